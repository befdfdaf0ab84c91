"""What the trace page's script fetches after the page loads: one span's details
(``/ui/trace/<id>/span/<span id>``, `span_details`) when its row first opens, and what find
searches besides services and operations (``/ui/trace/<id>/find.json``, `find_text`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

from streams.errors import InputError
from streams.model.span import AttributeValue
from streams.query import Reader, parse_trace_id
from streams.query.table import format_ms
from streams.query.waterfall import stored_spans
from streams.query.web import Page
from streams.query.web.download import Download
from streams.query.web.markup import (
    clock,
    link,
    message_page,
    text,
    trace_url,
)
from streams.query.web.trace_layout import LAYOUT_COLUMNS, WaterfallRow, layout_waterfall

FIND_COLUMNS = (*LAYOUT_COLUMNS, "SpanAttributes", "ResourceAttributes")
"""What find searches besides service and operation: attribute and resource keys and values."""
SPAN_ID = re.compile(r"[0-9a-f]{16}").fullmatch


def _offset(ns: int) -> str:
    return f"+{format_ms(ns)} ms"


def _key_values(pairs: Iterable[tuple[str, object]]) -> str:
    """A two-column table of names and values; empty when there are none."""
    rows = "".join(f'<tr><td class="k">{text(k)}</td><td>{text(v)}</td></tr>' for k, v in pairs)
    return f"<table>{rows}</table>" if rows else ""


def _attributes(values: Mapping[str, AttributeValue]) -> str:
    """Attributes as a table, sorted by key."""
    return _key_values(sorted(values.items()))


def _section(title: str, body_html: str) -> str:
    """A titled part of a span's details."""
    if not body_html:
        return ""
    return f"<div><h3>{text(title)}</h3>{body_html}</div>"


def span_detail(row: WaterfallRow, trace_start_ns: int) -> str:
    """The details of one span: what it is, its status, attributes, resource, events, links
    (the sections of its row's ``.span-detail``)."""
    span = row.span
    duration = span["end_time_unix_nano"] - span["start_time_unix_nano"]
    status = span["status_code"] + (f": {span['status_message']}" if span["status_message"] else "")
    facts: list[tuple[str, str]] = [
        ("service", span["service_name"]),
        ("operation", span["name"]),
        ("kind", span["kind"]),
        ("status", status),
        (
            "start",
            f"{_offset(span['start_time_unix_nano'] - trace_start_ns)}  "
            f"({clock(span['start_time_unix_nano'])})",
        ),
        ("duration", f"{format_ms(duration)} ms"),
        (
            "critical path",
            f"{format_ms(row.critical_ns)} ms of its own time" if row.critical_ns else "not on it",
        ),
        ("span id", span["span_id"]),
        ("parent span id", span["parent_span_id"] or "(root)"),
    ]
    if span["scope_name"]:
        facts.append(("scope", f"{span['scope_name']} {span['scope_version']}".strip()))
    if span["trace_state"]:
        facts.append(("trace state", span["trace_state"]))
    facts.append(("source format", span["source_format"]))
    about = _key_values(facts)
    events = "".join(
        f'<tr><td class="k">{text(_offset(e["time_unix_nano"] - trace_start_ns))}</td>'
        f"<td><b>{text(e['name'])}</b>{_attributes(e['attributes'])}</td></tr>"
        for e in sorted(span["events"], key=lambda e: e["time_unix_nano"])
    )
    links = "".join(
        f'<tr><td class="k">{link(trace_url(lk["trace_id"]), text(lk["trace_id"]), "mono")}</td>'
        f'<td class="mono">{text(lk["span_id"])}{_attributes(lk["attributes"])}</td></tr>'
        for lk in span["links"]
    )
    return (
        _section("Span", about)
        + _section("Attributes", _attributes(span["attributes"]))
        + _section("Events", f"<table>{events}</table>" if events else "")
        + _section("Links", f"<table>{links}</table>" if links else "")
        + _section("Resource", _attributes(span["resource_attributes"]))
    )


def span_details(reader: Reader, trace_id: str, span_id: str) -> Page:
    """One span's details (`span_detail`), the HTML the trace page's script puts in its row,
    laid out as on the page (skew-adjusted times, critical path); a page that says what is
    wrong when the ids are malformed (400) or the span is not stored (404)."""
    try:
        wanted = parse_trace_id(trace_id)
    except InputError as err:
        return message_page(400, "Not a trace id", f"{err}.", "search")
    span = span_id.strip().lower()
    if not SPAN_ID(span):
        return message_page(
            400, "Not a span id", f"{span_id!r} is not a span id: give 16 hex digits.", "search"
        )
    full = stored_spans(reader, wanted, span_id=span)
    if not full:
        return message_page(
            404,
            "Span not found",
            f"Trace {wanted} has no span {span} stored: reload the trace page "
            "(the span's id was mistyped, or its trace expired).",
            "search",
        )
    # Every other span only as the layout needs it: this span's times depend on the whole trace.
    spans = [
        full[0] if s["span_id"] == span else s for s in stored_spans(reader, wanted, LAYOUT_COLUMNS)
    ]
    waterfall = layout_waterfall(spans)
    row = next(r for r in waterfall.rows if r.span["span_id"] == span)
    return Page(200, span_detail(row, waterfall.start_ns))


def _find_text(values: Mapping[str, AttributeValue]) -> str:
    """Keys and values as the details show them, one a line, sorted by key."""
    return "\n".join(k + "\n" + str(v) for k, v in sorted(values.items()))


def find_text(reader: Reader, trace_id: str) -> Download | Page:
    """What the trace page's find searches besides services and operations, as JSON: each
    span's attributes and the index of its resource's text (resources are shared by many
    spans); a page that says why there is none (bad id, nothing stored)."""
    try:
        wanted = parse_trace_id(trace_id)
    except InputError as err:
        return message_page(400, "Not a trace id", f"{err}.", "search")
    spans = stored_spans(reader, wanted, FIND_COLUMNS)
    if not spans:
        return message_page(
            404,
            "Trace not found",
            f"No spans are stored for trace {wanted}: nothing to find in. Reload the trace page.",
            "search",
        )
    resources: dict[str, int] = {}
    texts = {
        s["span_id"]: [
            _find_text(s["attributes"]),
            resources.setdefault(_find_text(s["resource_attributes"]), len(resources)),
        ]
        for s in spans
    }
    body = json.dumps({"resources": list(resources), "spans": texts}, ensure_ascii=False)
    return Download(body.encode(), "application/json", f"trace-{wanted}-find.json")
