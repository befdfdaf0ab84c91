"""`tracepipe trace <id>`: a trace's spans as an indented waterfall, critical path marked."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streams.assemble.critical_path import critical_path
from streams.assemble.error_origins import error_origins
from streams.assemble.structure import analyze_structure
from streams.model.span import Span, SpanEvent, SpanLink, make_span
from streams.query import Reader, quote
from streams.sink.spans import DEDUPLICATED_SPANS, OTEL_TRACES_COLUMNS, SOURCE_FORMAT_ATTRIBUTE
from streams.sink.traces import TRACES
from streams.warehouse import SPAN_KIND_VALUES, STATUS_CODE_VALUES

_KIND_NAMES = {v: k for k, v in SPAN_KIND_VALUES.items()}
_STATUS_NAMES = {v: k for k, v in STATUS_CODE_VALUES.items()}
BAR_WIDTH = 30


def spans_from_rows(rows: Sequence[dict[str, Any]]) -> list[Span]:
    """Canonical spans from otel_traces rows; the columns a row lacks keep their defaults.

    Attribute values come back as the strings otel_traces stores; the source format rides in
    the span attributes (SOURCE_FORMAT_ATTRIBUTE) and is taken back out of them.
    """
    spans: list[Span] = []
    for r in rows:
        span = make_span(
            r["TraceId"],
            r["SpanId"],
            r["SpanName"],
            r["ServiceName"],
            int(r["Timestamp"]),
            int(r["Timestamp"]) + int(r["Duration"]),
            parent_span_id=r["ParentSpanId"],
            kind=_KIND_NAMES.get(r["SpanKind"], "INTERNAL"),
            status_code=_STATUS_NAMES.get(r["StatusCode"], "UNSET"),
            status_message=r.get("StatusMessage", ""),
        )
        if "SpanAttributes" in r:
            attributes = dict(r["SpanAttributes"])
            span["source_format"] = attributes.pop(SOURCE_FORMAT_ATTRIBUTE, span["source_format"])
            span["attributes"] = attributes
        if "ResourceAttributes" in r:
            span["resource_attributes"] = dict(r["ResourceAttributes"])
        span["trace_state"] = r.get("TraceState", "")
        span["scope_name"] = r.get("ScopeName", "")
        span["scope_version"] = r.get("ScopeVersion", "")
        if "Events.Name" in r:
            span["events"] = [
                SpanEvent(time_unix_nano=int(t), name=n, attributes=dict(a))
                for t, n, a in zip(
                    r["Events.Timestamp"], r["Events.Name"], r["Events.Attributes"], strict=True
                )
            ]
        if "Links.TraceId" in r:
            span["links"] = [
                SpanLink(trace_id=t, span_id=i, trace_state=st, attributes=dict(a))
                for t, i, st, a in zip(
                    r["Links.TraceId"],
                    r["Links.SpanId"],
                    r["Links.TraceState"],
                    r["Links.Attributes"],
                    strict=True,
                )
            ]
        spans.append(span)
    return spans


def stored_spans(
    reader: Reader,
    trace_id: str,
    columns: Sequence[str] = OTEL_TRACES_COLUMNS,
    span_id: str = "",
) -> list[Span]:
    """Every stored span of a trace once (only `span_id`'s when given), the otel_traces
    `columns` read back (the others keep their defaults); [] when none."""
    where = f"TraceId = {quote(trace_id.lower())}"
    if span_id:
        where += f" AND SpanId = {quote(span_id.lower())}"
    rows = reader.query_dicts(
        f"SELECT {', '.join(columns)} FROM {DEDUPLICATED_SPANS} WHERE {where}"
    )
    return spans_from_rows(rows)


def trace_summary(reader: Reader, trace_id: str) -> dict[str, Any] | None:
    """The latest assembled version of a trace (tracepipe_traces), None if not assembled yet."""
    rows = reader.query_dicts(
        "SELECT Version, Completion, SpanCount, ErrorCount, Start, DurationNs, RootService, "
        "RootOperation, Services, ClockSkewAdjusted, Warnings, Sampled, SamplingPolicy "
        f"FROM {TRACES} FINAL WHERE TraceId = {quote(trace_id.lower())}"
    )
    return rows[0] if rows else None


def tree_order(spans: list[Span]) -> list[tuple[int, Span]]:
    """Depth-first (children by start time), without recursion; orphans start new subtrees."""
    ids = {s["span_id"] for s in spans}
    children: dict[str, list[Span]] = {}
    tops: list[Span] = []
    for span in sorted(spans, key=lambda s: (s["start_time_unix_nano"], s["span_id"])):
        parent = span["parent_span_id"]
        if parent and parent in ids and parent != span["span_id"]:
            children.setdefault(parent, []).append(span)
        else:
            tops.append(span)
    out: list[tuple[int, Span]] = []
    seen: set[str] = set()
    stack = [(0, s) for s in reversed(tops)]
    while stack:
        depth, span = stack.pop()
        if span["span_id"] in seen:  # a parent cycle: show each span once
            continue
        seen.add(span["span_id"])
        out.append((depth, span))
        stack.extend((depth + 1, c) for c in reversed(children.get(span["span_id"], [])))
    out.extend((0, s) for s in spans if s["span_id"] not in seen)
    return out


def render_waterfall(spans: list[Span]) -> str:
    """The waterfall: one line per span with offset bar, duration, error and critical-path mark."""
    if not spans:
        return "(no spans)"
    start = min(s["start_time_unix_nano"] for s in spans)
    end = max(s["end_time_unix_nano"] for s in spans)
    total = max(end - start, 1)
    on_path = {seg["span_id"] for seg in critical_path(spans).segments}
    lines = [
        f"{'span':48} {'timeline':{BAR_WIDTH + 2}} {'ms':>9}",
        f"{'':48} {'':{BAR_WIDTH + 2}} {'':>9}  (* critical path, ! error)",
    ]
    for depth, span in tree_order(spans):
        label = f"{'  ' * depth}{span['service_name']}: {span['name']}"[:48]
        offset = (span["start_time_unix_nano"] - start) * BAR_WIDTH // total
        length = max(
            1, (span["end_time_unix_nano"] - span["start_time_unix_nano"]) * BAR_WIDTH // total
        )
        bar = (" " * offset + "█" * length)[:BAR_WIDTH].ljust(BAR_WIDTH)
        duration_ms = (span["end_time_unix_nano"] - span["start_time_unix_nano"]) / 1e6
        marks = ("*" if span["span_id"] in on_path else " ") + (
            "!" if span["status_code"] == "ERROR" else " "
        )
        error = f"  {span['status_message']}" if span["status_code"] == "ERROR" else ""
        lines.append(f"{label:48} |{bar}| {duration_ms:9.3f} {marks}{error}")
    return "\n".join(lines)


def render_error_origins(spans: list[Span]) -> str:
    """Where the trace's errors began and whom they reached, one line per origin span; empty
    when no span errored (streams/assemble/error_origins.py)."""
    origins = error_origins(analyze_structure(spans))
    if not origins:
        return ""
    lines = ["error origins (where an error began -> the services it propagated to):"]
    for o in origins:
        if o["propagated_to"]:
            reach = f"-> {', '.join(o['propagated_to'])}"
            reach += " (reached the root)" if o["reached_root"] else ""
        elif o["reached_root"]:
            reach = "(the root span)"
        else:
            reach = "(not propagated: its parent did not error, or did not wait for it)"
        message = f"  {o['status_message']}" if o["status_message"] else ""
        lines.append(f"  {o['service']}: {o['operation']}{message}  {reach}")
    return "\n".join(lines)


def trace_report(reader: Reader, trace_id: str) -> str | None:
    """A stored trace's summary line (if assembled) and waterfall; None if no span is stored."""
    spans = stored_spans(reader, trace_id)
    if not spans:
        return None
    lines: list[str] = []
    s = trace_summary(reader, trace_id)
    if s is not None:
        lines.append(
            f"trace {trace_id}  version {s['Version']}  {s['Completion']}  "
            f"{s['SpanCount']} spans  {s['ErrorCount']} errors  "
            f"{int(s['DurationNs']) / 1e6:.3f} ms  root {s['RootService']}: {s['RootOperation']}"
        )
        lines += [f"  warning: {warning}" for warning in s["Warnings"]]
    lines.append(render_waterfall(spans))
    origins = render_error_origins(spans)
    if origins:
        lines.append(origins)
    return "\n".join(lines)
