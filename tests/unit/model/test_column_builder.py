"""SpanColumnsBuilder's raw entry (a decoder's ids as bytes, enum numbers, shared resources)
builds what `add` builds from the same spans, and refuses what the columns cannot hold."""

from __future__ import annotations

import pytest

from streams.errors import SchemaError
from streams.model.column_builder import SpanColumnsBuilder
from streams.model.column_codec import columns_from_spans
from streams.model.columns import TEXT_COLUMNS
from streams.model.span import SPAN_KINDS, STATUS_CODES, Span
from tests.unit.model.test_columns import odd_spans, web_shop


def add_raw(builder: SpanColumnsBuilder, span: Span) -> None:
    parent = span["parent_span_id"]
    builder.add_raw(
        bytes.fromhex(span["trace_id"]),
        bytes.fromhex(span["span_id"]),
        bytes.fromhex(parent) if parent else bytes(8),
        span["start_time_unix_nano"],
        span["end_time_unix_nano"],
        SPAN_KINDS.index(span["kind"]),
        STATUS_CODES.index(span["status_code"]),
        [span[column] for column in TEXT_COLUMNS],  # type: ignore[literal-required]
        span["attributes"],
        builder.add_resource(span["resource_attributes"]),
        [(e["time_unix_nano"], e["name"], e["attributes"]) for e in span["events"]],
        [(lk["trace_id"], lk["span_id"], lk["trace_state"], lk["attributes"])
         for lk in span["links"]],
    )  # fmt: skip


def test_add_raw_builds_what_add_builds() -> None:
    spans = odd_spans() + web_shop(30)
    builder = SpanColumnsBuilder()
    for span in spans:
        add_raw(builder, span)
    raw = builder.build()
    assert raw.spans() == columns_from_spans(spans).spans() == spans
    distinct = {tuple(map(repr, s["resource_attributes"].items())) for s in spans}
    assert raw.resources.maps == len(distinct)


@pytest.mark.parametrize(
    "change",
    [
        {"trace_id": b"\x01" * 15},
        {"parent": b"\x01" * 4},
        {"start": 2**63},
        {"kind": 256},
        {"texts": ["name", "svc", "", "", "", "", 7]},
        {"texts": ["name"]},
        {"resource": 5},
        {"attributes": {"big": 2**64}},
    ],
)
def test_add_raw_refuses_what_columns_cannot_hold_and_keeps_nothing(
    change: dict[str, object],
) -> None:
    builder = SpanColumnsBuilder()
    resource = builder.add_resource({"service.name": "svc"})
    fields: dict[str, object] = {
        "trace_id": b"\x01" * 16, "span_id": b"\x02" * 8, "parent": bytes(8), "start": 1,
        "end": 2, "kind": 1, "status": 0, "texts": ["name", "svc", "", "", "", "", "x"],
        "attributes": {"a": 1}, "resource": resource,
    }  # fmt: skip
    with pytest.raises(SchemaError):
        builder.add_raw(*{**fields, **change}.values())  # type: ignore[arg-type]
    assert len(builder) == 0
    builder.add_raw(*fields.values())  # type: ignore[arg-type]
    assert len(builder.build().spans()) == 1
