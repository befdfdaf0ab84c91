"""Spans to otel_traces rows, as the OpenTelemetry Collector's ClickHouse exporter writes them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from streams.model.attribute_columns import BOOLEAN, DOUBLE, LONG, NULL, STRING, AttributeColumns
from streams.model.attribute_text import attribute_text, double_text, integer_text
from streams.model.columns import SpanColumns, hex_ids
from streams.model.span import SPAN_KINDS, STATUS_CODES, AttributeValue, Span
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


def attribute_map(attributes: dict[str, AttributeValue]) -> dict[str, str]:
    """Every attribute as the Collector's exporter writes it (`attribute_text`), keys unchanged."""
    return {k: attribute_text(v) for k, v in attributes.items()}


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


# ---------------------------------------------------------------------------------------------
# The hot path: otel_traces as Arrow columns straight from span columns, no row per span.
# `span_row` stays the reference the tests hold this to.

_KIND_TEXT = [SPAN_KIND_VALUES[kind] for kind in SPAN_KINDS]
_STATUS_TEXT = [STATUS_CODE_VALUES[code] for code in STATUS_CODES]
_TIMESTAMP = pa.timestamp("ns", tz="UTC")
_TEXT_MAP = pa.map_(pa.string(), pa.string())


def _value_text(attributes: AttributeColumns, strings: list[str]) -> tuple[Any, list[str]]:
    """Each entry's value as attribute_text writes it: indexes into strings + the returned
    extra texts (numbers, booleans, bytes and arrays written once per distinct value, by the
    functions attribute_text uses for their type)."""
    types = attributes.types
    values = attributes.values
    index = values.copy()
    extra: list[str] = []
    base = len(strings)
    for kind in np.unique(types).tolist():
        if kind == STRING:
            continue
        mask = types == kind
        chosen = values[mask]
        if kind in (LONG, DOUBLE):
            distinct, inverse = np.unique(chosen, return_inverse=True)
            index[mask] = base + len(extra) + inverse.reshape(-1)
            if kind == LONG:
                extra.extend(map(integer_text, distinct.tolist()))
            else:
                extra.extend(map(double_text, distinct.view(np.float64).tolist()))
        elif kind == BOOLEAN:
            index[mask] = base + len(extra) + (chosen != 0)
            extra.extend((attribute_text(False), attribute_text(True)))
        elif kind == NULL:
            index[mask] = base + len(extra)
            extra.append(attribute_text(None))
        else:
            index[mask] = base + len(extra) + np.arange(len(chosen))
            extra.extend(attribute_text(attributes.extras[i]) for i in chosen.tolist())
    return index, extra


def _text_map(
    attributes: AttributeColumns,
    strings: list[str],
    appended: tuple[int, Any] | None = None,
) -> Any:
    """A Map(String, String) Arrow array of the maps; `appended` = (key index, value index per
    map) adds one entry at the end of every map (a key already in a map is replaced)."""
    value_index, extra = _value_text(attributes, strings)
    dictionary = pa.array(strings + extra, type=pa.string())
    offsets = attributes.offsets.astype(np.int64)
    keys = attributes.keys.astype(np.int64)
    if appended is not None:
        key, per_map = appended
        keep = keys != key
        maps = len(offsets) - 1
        if not keep.all():
            map_of_entry = np.repeat(np.arange(maps), np.diff(offsets))
            kept = np.bincount(map_of_entry[keep], minlength=maps)
            offsets = np.concatenate([[0], np.cumsum(kept)])
            keys, value_index = keys[keep], value_index[keep]
        new_offsets = offsets + np.arange(maps + 1)
        total = len(keys) + maps
        full_keys = np.empty(total, dtype=np.int64)
        full_values = np.empty(total, dtype=np.int64)
        tail = new_offsets[1:] - 1
        body = np.ones(total, dtype=bool)
        body[tail] = False
        full_keys[body], full_values[body] = keys, value_index
        full_keys[tail], full_values[tail] = key, per_map
        offsets, keys, value_index = new_offsets, full_keys, full_values
    return pa.MapArray.from_arrays(
        pa.array(offsets, type=pa.int32()), dictionary.take(keys), dictionary.take(value_index)
    )


def _strings_array(raw: Any) -> Any:
    """Hex ids as an Arrow string array, without a Python str per id."""
    data = hex_ids(raw)
    width = 2 * raw.shape[1]
    offsets = np.arange(0, len(raw) * width + 1, width, dtype=np.int32)
    return pa.StringArray.from_buffers(len(raw), pa.py_buffer(offsets), pa.py_buffer(data))


def _lists(counts: Any, flat: Any) -> Any:
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), flat)


def _nested(rows: list[Any], n: int) -> tuple[Any, list[Any]]:
    """Per-span counts of rows carrying their span index first, and the rows in span order."""
    ordered = sorted(rows, key=lambda row: row[0])
    counts = np.bincount(np.array([row[0] for row in ordered], dtype=np.intp), minlength=n)
    return counts, ordered


def _plain_map(maps: list[dict[str, AttributeValue]]) -> Any:
    offsets = np.concatenate([[0], np.cumsum([len(m) for m in maps])]).astype(np.int32)
    keys = [k for m in maps for k in m]
    values = [attribute_text(v) for m in maps for v in m.values()]
    return pa.MapArray.from_arrays(
        pa.array(offsets), pa.array(keys, type=pa.string()), pa.array(values, type=pa.string())
    )


def otel_traces_table(columns: SpanColumns) -> Any:
    """The otel_traces rows of a span batch as one Arrow table (columns OTEL_TRACES_COLUMNS),
    the same values span_row gives span by span."""
    n = len(columns)
    strings = columns.strings
    dictionary = pa.array(strings, type=pa.string())

    def text(column: str) -> Any:
        return dictionary.take(columns.text[column])

    source_key = len(strings)
    span_attributes = _text_map(
        columns.attributes,
        [*strings, SOURCE_FORMAT_ATTRIBUTE],
        (source_key, columns.text["source_format"].astype(np.int64)),
    )
    resources = _text_map(columns.resources, strings).take(columns.resource)
    parents = _strings_array(columns.parent_span_id)
    roots = columns.is_root()
    if roots.any():
        parents = pc.if_else(pa.array(roots), "", parents)
    start = columns.start_time_unix_nano
    duration = np.maximum(columns.end_time_unix_nano - start, 0).astype(np.uint64)
    event_counts, events = _nested(columns.events, n)
    link_counts, links = _nested(columns.links, n)
    arrays = [
        pa.array(start, type=pa.int64()).cast(_TIMESTAMP),
        _strings_array(columns.trace_id),
        _strings_array(columns.span_id),
        parents,
        text("trace_state"),
        text("name"),
        pa.array(_KIND_TEXT, type=pa.string()).take(columns.kind),
        text("service_name"),
        resources,
        text("scope_name"),
        text("scope_version"),
        span_attributes,
        pa.array(duration, type=pa.uint64()),
        pa.array(_STATUS_TEXT, type=pa.string()).take(columns.status_code),
        text("status_message"),
        _lists(event_counts, pa.array([e[1] for e in events], pa.int64()).cast(_TIMESTAMP)),
        _lists(event_counts, pa.array([e[2] for e in events], pa.string())),
        _lists(event_counts, _plain_map([e[3] for e in events])),
        _lists(link_counts, pa.array([lk[1] for lk in links], pa.string())),
        _lists(link_counts, pa.array([lk[2] for lk in links], pa.string())),
        _lists(link_counts, pa.array([lk[3] for lk in links], pa.string())),
        _lists(link_counts, _plain_map([lk[4] for lk in links])),
    ]
    return pa.Table.from_arrays(arrays, names=list(OTEL_TRACES_COLUMNS))
