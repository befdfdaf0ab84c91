"""`tracepipe trace <id>`: a trace's spans as an indented waterfall, critical path marked."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streams.assemble.critical_path import critical_path
from streams.model.span import Span, make_span
from streams.query import Reader, quote
from streams.warehouse import SPAN_KIND_VALUES, STATUS_CODE_VALUES

_KIND_NAMES = {v: k for k, v in SPAN_KIND_VALUES.items()}
_STATUS_NAMES = {v: k for k, v in STATUS_CODE_VALUES.items()}
BAR_WIDTH = 30


def spans_from_rows(rows: Sequence[dict[str, Any]]) -> list[Span]:
    """Canonical spans (the fields the analysis needs) from otel_traces rows."""
    return [
        make_span(
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
        for r in rows
    ]


def _order(spans: list[Span]) -> list[tuple[int, Span]]:
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
    for depth, span in _order(spans):
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


def trace_report(reader: Reader, trace_id: str) -> str | None:
    """A stored trace's summary line (if assembled) and waterfall; None if no span is stored."""
    quoted = quote(trace_id.lower())
    summary = reader.query_dicts(
        "SELECT Version, Completion, SpanCount, ErrorCount, DurationNs, RootService, "
        f"RootOperation, Warnings FROM tracepipe_traces FINAL WHERE TraceId = {quoted}"
    )
    rows = reader.query_dicts(
        "SELECT TraceId, SpanId, ParentSpanId, SpanName, SpanKind, ServiceName, Timestamp, "
        f"Duration, StatusCode, StatusMessage FROM otel_traces WHERE TraceId = {quoted}"
    )
    if not rows:
        return None
    lines: list[str] = []
    if summary:
        s = summary[0]
        lines.append(
            f"trace {trace_id}  version {s['Version']}  {s['Completion']}  "
            f"{s['SpanCount']} spans  {s['ErrorCount']} errors  "
            f"{int(s['DurationNs']) / 1e6:.3f} ms  root {s['RootService']}: {s['RootOperation']}"
        )
        lines += [f"  warning: {warning}" for warning in s["Warnings"]]
    lines.append(render_waterfall(spans_from_rows(rows)))
    return "\n".join(lines)
