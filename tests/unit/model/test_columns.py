"""Span columns: the round trip, select/concat, the wire form's own checks, and message sizes."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from streams.config import IngestConfig
from streams.errors import DecodeError, SchemaError
from streams.generate.generator import TraceGenerator
from streams.generate.topology import default_topology
from streams.ingest.validate import validate_columns
from streams.model.column_builder import SpanColumnsBuilder
from streams.model.column_codec import SpanColumnsCodec, columns_from_spans
from streams.model.columns import concat_columns, hex_ids, hex_strings
from streams.model.span import Span, make_span

CODEC = SpanColumnsCodec()
T0 = 1_700_000_000_000_000_000


def web_shop(traces: int, seed: int = 1) -> list[Span]:
    """Spans of the web shop `tracepipe generate` sends (HTTP, DB, messaging attributes)."""
    generator = TraceGenerator(default_topology(), seed=seed, id_seed=seed)
    return [s for i in range(traces) for s in generator.trace(T0 + i * 1_000_000)]


def odd_spans() -> list[Span]:
    """Spans with every attribute type, events, links, a root and a child, shared resources."""
    resource: dict[str, Any] = {"service.name": "svc", "host.name": "h-1", "cores": 8}
    return [
        make_span(
            "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "GET /", "svc", T0, T0 + 5,
            kind="SERVER",
            resource_attributes=resource,
            attributes={
                "s": "ü text", "i": -(2**63), "big": 2**63 - 1, "d": 2.0, "e": 1.5e20,
                "tiny": 1e-7, "t": True, "f": False, "n": None, "b": b"\x00\xff",
                "arr": [1.0, 2.5], "mixed": ["ü", 1, None, True, b"x"], "empty": [],
            },
            events=[{"time_unix_nano": T0 + 1, "name": "exception",
                     "attributes": {"exception.type": "E", "n": 3}}],
            status_code="ERROR",
            status_message="boom",
        ),
        make_span(
            "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b8", "SELECT", "db", T0 + 1, T0 + 2,
            parent_span_id="00f067aa0ba902b7",
            kind="CLIENT",
            resource_attributes=resource,
            links=[{"trace_id": "5bf92f3577b34da6a3ce929d0e0e4736", "span_id": "10f067aa0ba902b7",
                    "trace_state": "k=v", "attributes": {"x": 1}}],
            trace_state="rojo=00f067aa0ba902b7",
            scope_name="lib",
            scope_version="1.2",
            source_format="otlp_proto",
        ),
        make_span("5bf92f3577b34da6a3ce929d0e0e4736", "20f067aa0ba902b7", "", "", T0, T0 - 1),
    ]  # fmt: skip


@pytest.mark.parametrize("spans", [odd_spans(), web_shop(200)], ids=["odd", "web-shop"])
def test_spans_come_back_from_the_wire_as_they_went(spans: list[Span]) -> None:
    value = CODEC.encode(columns_from_spans(spans))
    assert CODEC.decode(value, CODEC.fingerprint).spans() == spans


def test_the_column_form_is_much_smaller_than_span_arrays() -> None:
    from streams.model.codec import AvroCodec

    spans = web_shop(300)
    columns = len(CODEC.encode(columns_from_spans(spans)))
    rows = len(AvroCodec("span", array=True).encode(spans))
    assert columns < rows / 2


def test_select_and_concat_keep_every_field() -> None:
    spans = odd_spans() + web_shop(20)
    columns = columns_from_spans(spans)
    order = [5, 0, 1, 9, 2]
    assert columns.select(np.array(order)).spans() == [spans[i] for i in order]
    parts = [columns_from_spans(spans[:2]), columns_from_spans(spans[2:3]),
             columns_from_spans(spans[3:])]  # fmt: skip
    assert concat_columns(parts).spans() == spans
    assert CODEC.decode(CODEC.encode(concat_columns(parts))).spans() == spans


def test_left_out_optional_fields_take_the_schema_defaults() -> None:
    builder = SpanColumnsBuilder()
    sparse: Any = {"trace_id": "a" * 32, "span_id": "b" * 16, "name": "op", "service_name": "s",
                   "start_time_unix_nano": 1, "end_time_unix_nano": 2}  # fmt: skip
    builder.add(sparse)
    expected = make_span("a" * 32, "b" * 16, "op", "s", 1, 2, resource_attributes={})
    assert builder.build().spans() == [expected]


@pytest.mark.parametrize(
    "change",
    [
        {"trace_id": "not-hex"},
        {"span_id": "abc"},
        {"kind": "SIDEWAYS"},
        {"start_time_unix_nano": 1.5},
        {"end_time_unix_nano": 2**64},
        {"attributes": {"k": object()}},
        {"attributes": {"k": 2**64}},
        {"name": None},
    ],
)
def test_a_span_that_does_not_fit_the_schema_is_refused_and_leaves_nothing(
    change: dict[str, Any],
) -> None:
    builder = SpanColumnsBuilder()
    good = odd_spans()[0]
    builder.add(good)
    with pytest.raises(SchemaError):
        builder.add({**good, "attributes": {"before": "x"}, **change})  # type: ignore[typeddict-item]
    builder.add(odd_spans()[1])
    assert builder.build().spans() == odd_spans()[:2]


def test_chunks_stay_under_the_byte_bound_in_span_order() -> None:
    spans = web_shop(100)
    columns = columns_from_spans(spans)
    whole = len(CODEC.encode(columns))
    chunks = CODEC.encode_chunks(columns, max_bytes=whole // 5)
    assert len(chunks) > 1
    assert [c[:2] for c in chunks] == sorted(c[:2] for c in chunks)
    assert [s for _, _, value in chunks for s in CODEC.decode(value).spans()] == spans
    assert all(len(value) <= whole // 5 for start, stop, value in chunks if stop - start > 1)
    assert CODEC.encode_chunks(columns, max_bytes=10**9) == [(0, len(spans), CODEC.encode(columns))]


def _corrupt(field: str, value: Any) -> bytes:
    record = CODEC.codec.decode(CODEC.encode(columns_from_spans(odd_spans())))
    record[field] = value
    return CODEC.codec.encode(record)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("count", 4),
        ("trace_id", b"\x01" * 15),
        ("name", np.array([0, 0, 999], dtype="<u4").tobytes()),
        ("resource", np.array([0, 0, 7], dtype="<u4").tobytes()),
        ("events", [{"span": 9, "time_unix_nano": 1, "name": "e", "attributes": {}}]),
        ("strings", ["only one"]),
    ],
)
def test_columns_that_contradict_themselves_are_a_decode_error(field: str, value: Any) -> None:
    with pytest.raises(DecodeError) as caught:
        CODEC.decode(_corrupt(field, value), CODEC.fingerprint)
    assert caught.value.reason == "invalid-columns"


@pytest.mark.parametrize("field", ["attributes", "resources"])
def test_an_empty_batch_without_map_offsets_is_a_decode_error(field: str) -> None:
    record = CODEC.codec.decode(CODEC.encode(columns_from_spans([])), CODEC.fingerprint)
    record[field] = {**record[field], "offsets": b""}
    with pytest.raises(DecodeError) as caught:
        CODEC.decode(CODEC.codec.encode(record), CODEC.fingerprint)
    assert caught.value.reason == "invalid-columns"


def test_damaged_bytes_are_a_decode_error_or_validated_spans() -> None:
    rng = random.Random(7)
    value = CODEC.encode(columns_from_spans(odd_spans()))
    outcomes = set()
    for _ in range(500):
        broken = bytearray(value)
        for _ in range(rng.randint(1, 4)):
            broken[rng.randrange(len(broken))] = rng.randrange(256)
        try:
            columns = CODEC.decode(bytes(broken), CODEC.fingerprint)
        except DecodeError:
            outcomes.add("decode error")
            continue
        valid, rejected = validate_columns(columns, IngestConfig())
        assert len(valid) + len(rejected) == len(columns)
        valid.spans()
        outcomes.add("rejected spans" if rejected else "read")
    assert outcomes == {"decode error", "rejected spans", "read"}


def test_a_chunk_carries_only_the_strings_and_resources_its_spans_use() -> None:
    # Every span with its own copy of its resource (as OTLP conversions give) and its own
    # strings: halves of the batch must not carry the other half's dictionary.
    spans = [
        make_span(f"{i + 1:032x}", f"{i + 1:016x}", f"op-{i}", "svc", T0, T0 + 1,
                  resource_attributes={"service.name": "svc", "host.name": f"h-{i % 3}"},
                  attributes={"url": f"/item/{i}", "blob": bytes([i % 256])})
        for i in range(400)
    ]  # fmt: skip
    columns = columns_from_spans(spans)
    assert columns.resources.maps == 3  # equal copies are one map
    whole = len(CODEC.encode(columns))
    chunks = CODEC.encode_chunks(columns, max_bytes=whole // 4)
    assert sum(len(value) for _, _, value in chunks) < whole * 1.2
    for start, stop, value in chunks:
        part = CODEC.decode(value)
        assert part.spans() == spans[start:stop]
        assert len(part.strings) < len(columns.strings) // 2
        assert len(part.attributes.extras) == stop - start


@pytest.mark.parametrize("spans", [odd_spans(), web_shop(200)], ids=["odd", "web-shop"])
def test_attribute_maps_of_some_keys_are_the_whole_maps_filtered(spans: list[Span]) -> None:
    columns = columns_from_spans(spans)
    strings = list(columns.strings)
    wanted = {"db.system", "peer.service", "s", "mixed", "b", "d", "absent"}
    whole = columns.attributes.dicts(strings)
    some = columns.attributes.dicts_of(strings, wanted)
    assert some == [{k: v for k, v in m.items() if k in wanted} for m in whole]
    assert any(some) and not all(some)


def test_ids_as_hex_keep_every_byte_whatever_the_array_layout() -> None:
    # Ids ending in zero bytes, a strided view (every other row), and no ids at all.
    raw = np.array([[0] * 7 + [1], [0xAB] + [0] * 7, [0xFF] * 8, [0x10] * 8], dtype=np.uint8)
    for ids in (raw, raw[::2], raw[:0]):
        expected = [bytes(row).hex() for row in ids.tolist()]
        assert hex_strings(ids) == expected
        assert hex_ids(ids) == "".join(expected).encode("ascii")
