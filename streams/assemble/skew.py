"""Clock-skew adjustment, following Jaeger's ClockSkew adjuster (model/adjuster/clockskew.go).

Spans recorded on different machines carry different clocks, so a server span can appear to
start before the client call that caused it. Jaeger's rule, applied top-down so every parent is
compared after its own adjustment:

- a child from the same host as its parent inherits the parent's shift unchanged;
- a child from another host (Jaeger: the process `ip` tag; here: `service_name`, and an empty
  service name always counts as another host) gets a shift of its own: none when it already
  lies within the (shifted) parent; when it is longer than the parent (async work, or a parent
  that timed out) only enough to stop it starting before the parent; otherwise one that centres
  it in the parent, assuming the network latency `parent_duration - child_duration` splits
  evenly between request and response.

A shift moves the span's start, end and event times together; durations never change. Top-level
spans (roots, orphans) are never shifted. The adjusted times are for analysis only: stored spans
keep what their services reported.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.assemble.structure import TraceStructure
from streams.model.span import (
    END,
    SERVICE_NAME,
    SPAN_ID,
    START,
    Span,
    SpanEvent,
    span_from_row,
)


@dataclass(frozen=True, slots=True)
class SkewAdjustment:
    """Skew-adjusted times of a trace's spans, indexed like `TraceStructure.spans`."""

    start_ns: list[int]
    end_ns: list[int]
    delta_ns: list[int]
    """The shift applied to each span (0 when none)."""
    adjusted_span_ids: list[str]
    """Span ids that were shifted, in top-down order."""

    @property
    def adjusted(self) -> bool:
        """Whether any span was shifted."""
        return bool(self.adjusted_span_ids)


def _skew_ns(child_start: int, child_end: int, parent_start: int, parent_end: int) -> int:
    """The shift that brings a child from another host within its parent (Jaeger's rule)."""
    child_duration = child_end - child_start
    parent_duration = parent_end - parent_start
    if child_duration > parent_duration:
        return parent_start - child_start if child_start < parent_start else 0
    if child_start >= parent_start and child_end <= parent_end:
        return 0
    latency = (parent_duration - child_duration) // 2
    return parent_start + latency - child_start


def adjust_clock_skew(structure: TraceStructure) -> SkewAdjustment:
    """Shift spans from other hosts into their parents' time bounds; inputs are not touched."""
    spans = structure.spans
    parent = structure.parent
    start = [s[START] for s in spans]
    # A span that ends before it starts is treated as instantaneous so that no rule sees a
    # negative duration.
    end = [max(s[END], s[START]) for s in spans]
    # Read in input order once: the top-down walk below jumps around, and touching each span's
    # row there costs a cache miss per span on large traces.
    service = [s[SERVICE_NAME] for s in spans]
    delta = [0] * len(spans)
    adjusted: list[str] = []
    for i in structure.order:
        p = parent[i]
        if p < 0:
            continue
        if service[i] and service[i] == service[p]:
            shift = delta[p]
        else:
            shift = _skew_ns(start[i], end[i], start[p], end[p])
        if shift:
            delta[i] = shift
            start[i] += shift
            end[i] += shift
            adjusted.append(spans[i][SPAN_ID])
    return SkewAdjustment(start_ns=start, end_ns=end, delta_ns=delta, adjusted_span_ids=adjusted)


def shifted_span(span: Span, delta_ns: int) -> Span:
    """A copy of `span` moved by `delta_ns` (start, end and event times); the input is kept."""
    copy: Span = span.copy()
    copy["start_time_unix_nano"] = span["start_time_unix_nano"] + delta_ns
    copy["end_time_unix_nano"] = span["end_time_unix_nano"] + delta_ns
    events: list[SpanEvent] = []
    for event in span["events"]:
        moved: SpanEvent = event.copy()
        moved["time_unix_nano"] = event["time_unix_nano"] + delta_ns
        events.append(moved)
    copy["events"] = events
    return copy


def adjusted_spans(structure: TraceStructure, adjustment: SkewAdjustment) -> list[Span]:
    """The trace's unique spans (dicts) with skew applied: shifted copies where shifted."""
    return [
        shifted_span(span_from_row(row), d) if d else span_from_row(row)
        for row, d in zip(structure.spans, adjustment.delta_ns, strict=True)
    ]
