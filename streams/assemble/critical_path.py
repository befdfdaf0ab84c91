"""The critical path of a trace: the chain of work that the root span's latency waited on.

Follows Jaeger UI's algorithm (packages/jaeger-ui/src/components/TracePage/CriticalPath/:
index.ts `computeCriticalPath`, utils/findLastFinishingChildSpan.ts,
utils/sanitizeOverFlowingChildren.ts), the same idea as Uber's CRISP: walk backwards from the
root's end; the child that finished last before the current point is on the path, so descend
into it, and on return continue from that child's start; time in which no child is picked is the
parent's own (self) time on the path. Before the walk, children are clipped to their parent's
bounds ("sanitize overflowing children") and children wholly outside them (async work that
started after the parent ended) are dropped with their subtrees.

Only synchronous children are on their parent's path, as in Jaeger UI, which walks CHILD_OF
references only: a child that runs after its parent stopped waiting is dropped with its subtree
before the walk. That is a CONSUMER whose parent is a PRODUCER (jaeger-ui CriticalPath/utils/
cpspan.ts `isBlockingSpan`), and a span whose reference to its parent is FOLLOWS_FROM
(jaeger-ui CriticalPath/utils/getChildOfSpans.ts). In OpenTelemetry data a follows-from parent is
a link to the parent span (same trace) whose `opentracing.ref_type` is not `child_of`, a link
without it counting as follows-from: the rule by which Jaeger turns an OTLP span into its own
references (jaegertracing/jaeger internal/storage/v2/elasticsearch/tracestore/to_dbmodel.go
`linksToDbSpanRefs`, `refTypeFromLink`; the other way, Jaeger's model takes a FOLLOWS_FROM
reference as the parent when there is no CHILD_OF one, `Span.ParentSpanID`, and the Collector's
pkg/translator/jaeger keeps that reference as a link typed follows_from).

Differences from Jaeger UI, on purpose:
- A child that ends exactly where the walk stands is picked (Jaeger needs it to end strictly
  before), so back-to-back sequential children all land on the path instead of the earlier ones
  turning into parent self time.
- Only the tree of the analysis start span (the root, else the earliest top-level span) is
  walked; other roots and orphan subtrees are off the path.
- The walk is iterative, with a per-span cursor into its children sorted by end time, so the
  whole path costs O(n log n) and no recursion limit applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

from streams.assemble.skew import SkewAdjustment, adjust_clock_skew
from streams.assemble.structure import TraceStructure, analyze_structure
from streams.model.span import (
    END,
    KIND,
    LINKS,
    NAME,
    SERVICE_NAME,
    SPAN_ID,
    START,
    TRACE_ID,
    Span,
    SpanRow,
)


class CriticalPathSegment(TypedDict):
    """A stretch of one span's own time on the critical path (skew-adjusted unix nanos)."""

    span_id: str
    service: str
    operation: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    self_time_ns: int


class CriticalPathSelfTime(TypedDict):
    """Total self time on the critical path of one (service, operation)."""

    service: str
    operation: str
    self_time_ns: int


@dataclass(frozen=True, slots=True)
class CriticalPath:
    """Segments in time order, covering the start span once; self time per (service, op)."""

    segments: list[CriticalPathSegment]
    self_time: list[CriticalPathSelfTime]
    """Largest self time first."""


_LEAF: list[int] = []
"""The kept children of a leaf (never written to)."""

REF_TYPE_ATTRIBUTE = "opentracing.ref_type"
"""The link attribute that says how a span relates to the span it links to (semconv)."""


def waits_for(parent: SpanRow, child: SpanRow) -> bool:
    """Whether `parent` waits for its child `child` (a synchronous child): not a CONSUMER of a
    PRODUCER, nor joined to it by a follows-from link. The one rule of what is asynchronous,
    for the critical path and for error propagation (streams/assemble/error_origins.py)."""
    if child[KIND] == "CONSUMER" and parent[KIND] == "PRODUCER":
        return False
    return not (child[LINKS] and follows_from_parent(child, parent))


def follows_from_parent(span: SpanRow, parent: SpanRow) -> bool:
    """Whether `span` names `parent` as a follows-from parent: a link to it (same trace) whose
    ref type is not `child_of` (Jaeger's `refTypeFromLink`: no ref type means follows-from)."""
    for link in span[LINKS] or ():
        if link["span_id"] == parent[SPAN_ID] and link["trace_id"] == parent[TRACE_ID]:
            ref_type: object = link["attributes"].get(REF_TYPE_ATTRIBUTE)
            return ref_type != "child_of"
    return False


def compute_critical_path(
    structure: TraceStructure, adjustment: SkewAdjustment | None = None
) -> CriticalPath:
    """The critical path from `structure.start`, on skew-adjusted times when given."""
    root = structure.start
    if root < 0:
        return CriticalPath(segments=[], self_time=[])
    spans = structure.spans
    if adjustment is None:
        raw_start = [s[START] for s in spans]
        raw_end = [max(s[END], s[START]) for s in spans]
    else:
        raw_start, raw_end = adjustment.start_ns, adjustment.end_ns

    # Clip every span of the start span's tree to its (clipped) parent, top-down; a child wholly
    # outside its parent, or one its parent does not wait for, is dropped with its subtree.
    start = [0] * len(spans)
    end = [0] * len(spans)
    start[root], end[root] = raw_start[root], raw_end[root]
    kept: dict[int, list[int]] = {}
    queue = [root]
    for node in queue:
        ps, pe = start[node], end[node]
        parent = spans[node]
        producer = parent[KIND] == "PRODUCER"
        mine: list[int] = []
        for c in structure.children.get(node, ()):
            cs, ce = raw_start[c], raw_end[c]
            if cs >= pe or ce <= ps:
                continue
            # waits_for is true unless the parent produces or the child links: ask only then.
            if (producer or spans[c][LINKS]) and not waits_for(parent, spans[c]):
                continue
            start[c] = cs if cs > ps else ps
            end[c] = ce if ce < pe else pe
            mine.append(c)
            queue.append(c)
        if mine:
            if len(mine) > 1:
                # Latest end first; among equal ends the longer child, then the one sent first
                # (`mine` is in input order and both sorts are stable; no key tuples).
                mine.sort(key=start.__getitem__)
                mine.sort(key=end.__getitem__, reverse=True)
            kept[node] = mine

    backwards: list[tuple[int, int, int]] = []  # (span, segment start, segment end), latest first
    cursor = [0] * len(spans)
    stack: list[int] = []
    node, bound = root, end[root]
    while True:
        mine = kept.get(node, _LEAF)
        pos = cursor[node]
        # The walk's bound only moves backwards, so children skipped once never qualify again.
        while pos < len(mine) and end[mine[pos]] > bound:
            pos += 1
        if pos < len(mine):
            child = mine[pos]
            cursor[node] = pos + 1
            if end[child] < bound:
                backwards.append((node, end[child], bound))
            stack.append(node)
            node, bound = child, end[child]
            continue
        cursor[node] = pos
        if start[node] < bound:
            backwards.append((node, start[node], bound))
        if not stack:
            break
        bound = start[node]
        node = stack.pop()

    segments: list[CriticalPathSegment] = []
    totals: dict[tuple[str, str], int] = {}
    last = -1
    for node, seg_start, seg_end in reversed(backwards):
        span = spans[node]
        key = (span[SERVICE_NAME], span[NAME])
        totals[key] = totals.get(key, 0) + seg_end - seg_start
        if node == last and segments[-1]["end_time_unix_nano"] == seg_start:
            # A zero-length child between two stretches of its parent: one segment, not two.
            segments[-1]["end_time_unix_nano"] = seg_end
            segments[-1]["self_time_ns"] += seg_end - seg_start
            continue
        segments.append(
            {
                "span_id": span[SPAN_ID],
                "service": key[0],
                "operation": key[1],
                "start_time_unix_nano": seg_start,
                "end_time_unix_nano": seg_end,
                "self_time_ns": seg_end - seg_start,
            }
        )
        last = node
    self_time: list[CriticalPathSelfTime] = [
        {"service": service, "operation": operation, "self_time_ns": ns}
        for (service, operation), ns in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return CriticalPath(segments=segments, self_time=self_time)


def critical_path(spans: Sequence[Span] | Sequence[SpanRow]) -> CriticalPath:
    """The critical path of a trace's spans after clock-skew adjustment."""
    structure = analyze_structure(spans)
    return compute_critical_path(structure, adjust_clock_skew(structure))
