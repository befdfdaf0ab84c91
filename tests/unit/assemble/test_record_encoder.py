"""TraceRecordEncoder writes exactly what fastavro writes for the trace schema."""

from __future__ import annotations

import pytest

from streams.assemble.record import TRACE_SCHEMA, TraceRecordEncoder, build_trace_record
from streams.generate.generator import TraceGenerator
from streams.generate.topology import default_topology
from streams.model.codec import AvroCodec

CODEC = AvroCodec(TRACE_SCHEMA)
START_NS = 1_700_000_000_000_000_000


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
