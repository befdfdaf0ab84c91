"""Spans become otel_traces rows as the Collector writes them; failed inserts are retried."""

from __future__ import annotations

from typing import Any

from streams.model.column_codec import SpanColumnsCodec, columns_from_spans
from streams.model.span import make_span
from streams.sink.spans import (
    OTEL_TRACES_COLUMNS,
    SOURCE_FORMAT_ATTRIBUTE,
    otel_traces_table,
    span_row,
)
from streams.warehouse import SPAN_KIND_VALUES, STATUS_CODE_VALUES
from tests.unit.model.test_attribute_text import GOLDEN


def row_dict(span: Any) -> dict[str, Any]:
    return dict(zip(OTEL_TRACES_COLUMNS, span_row(span), strict=True))


def test_row_maps_every_field() -> None:
    span = make_span(
        "a" * 32,
        "b" * 16,
        "GET /",
        "web",
        1_000,
        4_500,
        parent_span_id="c" * 16,
        kind="CLIENT",
        status_code="ERROR",
        status_message="timeout",
        attributes={"n": 3, "ok": False, "f": 0.25, "list": [1, "x"]},
        events=[{"time_unix_nano": 2_000, "name": "retry", "attributes": {"attempt": 2}}],
        links=[
            {
                "trace_id": "d" * 32,
                "span_id": "e" * 16,
                "trace_state": "k=v",
                "attributes": {"why": "batch"},
            }
        ],
    )
    row = row_dict(span)
    assert row["Timestamp"] == 1_000
    assert row["Duration"] == 3_500
    assert row["TraceId"] == "a" * 32 and row["ParentSpanId"] == "c" * 16
    assert row["SpanKind"] == SPAN_KIND_VALUES["CLIENT"]
    assert row["StatusCode"] == STATUS_CODE_VALUES["ERROR"]
    assert row["SpanAttributes"] == {
        "n": "3",
        "ok": "false",
        "f": "0.25",
        "list": '[1,"x"]',
        "tracepipe.source_format": "tracepipe",
    }
    assert row["ResourceAttributes"] == {"service.name": "web"}
    assert row["Events.Timestamp"] == [2_000]
    assert row["Events.Attributes"] == [{"attempt": "2"}]
    assert row["Links.TraceState"] == ["k=v"]


def test_negative_duration_is_clamped() -> None:
    assert row_dict(make_span("a" * 32, "b" * 16, "x", "s", 10, 5))["Duration"] == 0


def python_rows(table: Any) -> list[tuple[Any, ...]]:
    """An otel_traces Arrow table's rows in span_row's Python form (ns ints, dicts)."""
    import pyarrow as pa  # type: ignore[import-untyped]

    columns = []
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_timestamp(column.type):
            values = column.cast(pa.int64()).to_pylist()
        elif pa.types.is_list(column.type) and pa.types.is_timestamp(column.type.value_type):
            values = column.cast(pa.list_(pa.int64())).to_pylist()
        elif pa.types.is_map(column.type):
            values = [dict(m) for m in column.to_pylist()]
        elif pa.types.is_list(column.type) and pa.types.is_map(column.type.value_type):
            values = [[dict(m) for m in maps] for maps in column.to_pylist()]
        else:
            values = column.to_pylist()
        columns.append(values)
    return list(zip(*columns, strict=True))


def test_the_column_path_writes_exactly_the_rows_span_row_writes() -> None:
    from tests.unit.model.test_columns import odd_spans, web_shop

    spans = odd_spans() + web_shop(100)
    overridden = make_span("f" * 32, "1" * 16, "op", "svc", 5, 9, source_format="zipkin_json",
                           attributes={SOURCE_FORMAT_ATTRIBUTE: "forged", "a": "b"})  # fmt: skip
    spans.append(overridden)
    spans.append(make_span("f" * 32, "2" * 16, "op", "svc", 5, 9))  # no attributes, last
    table = otel_traces_table(columns_from_spans(spans))
    assert tuple(table.column_names) == OTEL_TRACES_COLUMNS
    assert python_rows(table) == [span_row(s) for s in spans]


# What a span carries as such (maps and arrays of arrays arrive as their text: tests/unit/ingest).
CARRIED = [
    (case, value, text)
    for case, value, text in GOLDEN
    if not isinstance(value, dict)
    and not (isinstance(value, list) and any(isinstance(v, list | dict) for v in value))
]


def test_columns_and_span_row_write_the_collectors_text_for_every_value() -> None:
    """The golden attribute texts, from span columns as the worker decodes them and from
    span_row, in span, resource, event and link attributes; each double twice in a batch (the
    column path writes a distinct value once)."""
    attributes = {case: value for case, value, _ in CARRIED}
    expected = {case: text for case, _, text in CARRIED}
    spans = [
        make_span("a" * 32, f"{i:016x}", "op", "svc", 5, 9,
                  resource_attributes={"service.name": "svc", **attributes},
                  attributes=attributes,
                  events=[{"time_unix_nano": 6, "name": "e", "attributes": attributes}],
                  links=[{"trace_id": "d" * 32, "span_id": "e" * 16, "trace_state": "",
                          "attributes": attributes}])
        for i in range(1, 3)
    ]  # fmt: skip
    codec = SpanColumnsCodec()
    columns = codec.decode(codec.encode(columns_from_spans(spans)), codec.fingerprint)
    rows = python_rows(otel_traces_table(columns))
    assert rows == [span_row(s) for s in columns.spans()]
    for row in rows:
        by_column = dict(zip(OTEL_TRACES_COLUMNS, row, strict=True))
        assert by_column["SpanAttributes"] == {**expected, SOURCE_FORMAT_ATTRIBUTE: "tracepipe"}
        assert by_column["ResourceAttributes"] == {"service.name": "svc", **expected}
        assert by_column["Events.Attributes"] == [expected]
        assert by_column["Links.Attributes"] == [expected]
