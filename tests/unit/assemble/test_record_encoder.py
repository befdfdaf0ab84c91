"""TraceRecordEncoder writes exactly what fastavro writes for the trace schema."""

from __future__ import annotations

import io

import fastavro
import pytest

from streams.assemble.record import TRACE_SCHEMA, TraceRecord, build_trace_record
from streams.assemble.record_codec import TraceRecordEncoder, encode_within
from streams.generate.generator import TraceGenerator
from streams.generate.topology import default_topology
from streams.model.codec import AvroCodec
from streams.model.span_encoder import (
    VECTOR_LONGS_MIN,
    avro_array,
    avro_id,
    avro_id_array,
    avro_long,
    avro_longs,
)

CODEC = AvroCodec(TRACE_SCHEMA)
START_NS = 1_700_000_000_000_000_000


def generated_records(seed: int, count: int) -> list[TraceRecord]:
    """`count` web-shop trace records without spans, a millisecond apart."""
    generator = TraceGenerator(default_topology(), seed=seed)
    return [
        build_trace_record(
            generator.trace(START_NS + i * 1_000_000),
            version=1,
            completion="complete",
            emitted_at_unix_nano=START_NS + i,
            include_spans=False,
        )
        for i in range(count)
    ]


@pytest.mark.parametrize("include_spans", [True, False])
def test_generated_trace_records_encode_byte_for_byte_like_fastavro(include_spans: bool) -> None:
    generator = TraceGenerator(default_topology(), seed=3, clock_skew_ms=20)
    encoder = TraceRecordEncoder(CODEC)
    for i in range(200):
        record = build_trace_record(
            generator.trace(START_NS + i * 1_000_000),
            version=1 + i % 3,
            completion="complete",
            emitted_at_unix_nano=START_NS + i,
            include_spans=include_spans,
            dropped_span_count=i % 2,
            previous_span_count=0,
        )
        encoded = encoder.encode(record)
        assert encoded == CODEC.encode(record)
        assert CODEC.decode(encoded, CODEC.fingerprint) == CODEC.decode(CODEC.encode(record))


def test_a_record_over_the_size_limit_goes_without_its_spans() -> None:
    generator = TraceGenerator(default_topology(), seed=4)
    spans = [s for i in range(40) for s in generator.trace(START_NS + i * 1_000_000)]
    # Forty traces' spans as one trace: the ids are unique, the record is large.
    spans = [{**s, "trace_id": spans[0]["trace_id"]} for s in spans]
    record = build_trace_record(
        spans, version=2, completion="complete", emitted_at_unix_nano=START_NS
    )
    encoder = TraceRecordEncoder(CODEC)
    full = encoder.encode(record)
    assert encode_within(encoder, [record], len(full)) == [(record, full)]
    ((published, value),) = encode_within(encoder, [record], len(full) - 1)
    assert len(value) < len(full) // 4
    assert published["spans"] == [] and published["span_ids"] == [s["span_id"] for s in spans]
    assert CODEC.decode(value) == published
    same = {k: v for k, v in record.items() if k not in ("spans", "span_ids")}
    assert {k: v for k, v in published.items() if k not in ("spans", "span_ids")} == same


def test_trace_record_batches_read_back_in_order_and_single_records_still_read() -> None:
    from streams.assemble.record_codec import TraceRecordsCodec, trace_batches
    from streams.model.codec import AvroCodec as Codec

    codec = TraceRecordsCodec()
    records = generated_records(seed=5, count=7)
    bodies = [codec.single.encode(r) for r in records]
    batches = trace_batches(bodies, max_bytes=3 * max(map(len, bodies)))
    assert len(batches) == 3
    read = [r for value in batches for r in codec.decode(value, codec.batch.fingerprint)]
    assert [r["trace_id"] for r in read] == [r["trace_id"] for r in records]
    (alone,) = codec.decode(bodies[0], codec.single.fingerprint)
    assert alone["trace_id"] == records[0]["trace_id"]
    assert codec.batch.fingerprint != Codec("trace").fingerprint


def test_a_field_the_hand_path_does_not_take_goes_through_fastavro() -> None:
    generator = TraceGenerator(default_topology(), seed=6)
    record = build_trace_record(
        generator.trace(START_NS), version=1, completion="complete", emitted_at_unix_nano=START_NS
    )
    encoder = TraceRecordEncoder(CODEC)
    odd = {**record, "sampled": 1, "warnings": ["naïve ✓ " * 40]}
    assert encoder.encode(odd) == CODEC.encode(odd)  # type: ignore[arg-type]
    broken = {**record, "version": "one"}
    with pytest.raises((TypeError, ValueError)):
        CODEC.encode(broken)
    with pytest.raises((TypeError, ValueError)):
        encoder.encode(broken)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "ids",
    [[], ["0123456789abcdef"] * 3, ["a" * 63, "b" * 63], ["a" * 64], ["x", "yy"], ["é" * 16], [""]],
    ids=["none", "span-ids", "widest-joined", "too-wide", "uneven", "not-ascii", "empty-id"],
)
def test_id_arrays_encode_as_arrays_of_avro_strings(ids: list[str]) -> None:
    assert avro_id_array(ids) == avro_array([avro_id(i) for i in ids])
    schema = fastavro.parse_schema({"type": "array", "items": "string"})
    assert fastavro.schemaless_reader(io.BytesIO(avro_id_array(ids)), schema) == ids


def test_longs_encoded_as_arrays_are_the_avro_longs_one_by_one() -> None:
    edges = [0, 1, -1, 63, 64, -64, -65, 8191, 8192, 2**27, 2**62, -(2**63), 2**63 - 1]
    times = [START_NS + i * 7_919 for i in range(VECTOR_LONGS_MIN)]
    values = edges + times + [-t for t in times]
    assert avro_longs(values) == [avro_long(v) for v in values]
    schema = fastavro.parse_schema({"type": "array", "items": "long"})
    body = avro_array(avro_longs(values))
    assert fastavro.schemaless_reader(io.BytesIO(body), schema) == values


@pytest.mark.parametrize("odd", [1.5, 2**63, "1"], ids=["float", "past-a-long", "text"])
def test_longs_as_arrays_refuse_what_is_not_a_long(odd: object) -> None:
    values: list[object] = [START_NS] * VECTOR_LONGS_MIN + [odd]
    with pytest.raises(TypeError):
        avro_longs(values)  # type: ignore[arg-type]


def test_many_records_encode_like_each_alone_even_with_one_odd_record() -> None:
    records = generated_records(seed=7, count=30)
    encoder = TraceRecordEncoder(CODEC)
    assert encoder.encode_many(records) == [CODEC.encode(r) for r in records]
    # A float duration is no Avro long to the hand path: the slice goes record by record and
    # the odd one through fastavro, which writes what it writes for it.
    records[3] = {**records[3], "duration_ns": 1.5}  # type: ignore[call-overload]
    assert encoder.encode_many(records) == [CODEC.encode(r) for r in records]
