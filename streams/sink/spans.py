"""Spans to otel_traces rows, as the OpenTelemetry Collector's ClickHouse exporter writes them."""

from __future__ import annotations

import base64
import json
from typing import Any

from streams.model.span import AttributeValue, Span
from streams.warehouse import SPAN_KIND_VALUES, STATUS_CODE_VALUES

OTEL_TRACES = "otel_traces"
DEDUPLICATED_SPANS = f"{OTEL_TRACES} FINAL"
"""What every reader of spans selects FROM: each span once. otel_traces is a ReplacingMergeTree
keyed by (TraceId, SpanId) (schemas/clickhouse/0006), and a span stored twice (a redelivered
batch) stays two rows until a merge, so reads say FINAL. Writes name OTEL_TRACES."""
# otel_traces has no column for it, so the span's source format rides in its attributes.
SOURCE_FORMAT_ATTRIBUTE = "tracepipe.source_format"
OTEL_TRACES_COLUMNS = (
    "Timestamp",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "TraceState",
    "SpanName",
    "SpanKind",
    "ServiceName",
    "ResourceAttributes",
    "ScopeName",
    "ScopeVersion",
    "SpanAttributes",
    "Duration",
    "StatusCode",
    "StatusMessage",
    "Events.Timestamp",
    "Events.Name",
    "Events.Attributes",
    "Links.TraceId",
    "Links.SpanId",
    "Links.TraceState",
    "Links.Attributes",
)


def attribute_string(value: AttributeValue) -> str:
    """An attribute value as the Collector's exporter stores it in a Map(String, String)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, list):
        return json.dumps(
            [base64.b64encode(v).decode() if isinstance(v, bytes) else v for v in value],
            separators=(",", ":"),
        )
    return str(value)


def attribute_map(attributes: dict[str, AttributeValue]) -> dict[str, str]:
    """Every attribute stringified, keys unchanged."""
    return {k: attribute_string(v) for k, v in attributes.items()}


def span_row(span: Span) -> tuple[Any, ...]:
    """One otel_traces row (columns in OTEL_TRACES_COLUMNS order) for a span."""
    start = span["start_time_unix_nano"]
    events = span["events"]
    links = span["links"]
    return (
        start,
        span["trace_id"],
        span["span_id"],
        span["parent_span_id"],
        span["trace_state"],
        span["name"],
        SPAN_KIND_VALUES[span["kind"]],
        span["service_name"],
        attribute_map(span["resource_attributes"]),
        span["scope_name"],
        span["scope_version"],
        {**attribute_map(span["attributes"]), SOURCE_FORMAT_ATTRIBUTE: span["source_format"]},
        max(0, span["end_time_unix_nano"] - start),
        STATUS_CODE_VALUES[span["status_code"]],
        span["status_message"],
        [e["time_unix_nano"] for e in events],
        [e["name"] for e in events],
        [attribute_map(e["attributes"]) for e in events],
        [lk["trace_id"] for lk in links],
        [lk["span_id"] for lk in links],
        [lk["trace_state"] for lk in links],
        [attribute_map(lk["attributes"]) for lk in links],
    )
