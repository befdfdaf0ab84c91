"""Fault: poison input on every ingest topic, interleaved with a valid web-shop workload.

Hypothesis draws the bad records (fuzzed bytes for single spans and span batches, OTLP and
Zipkin payloads, valid spans under an unknown or a foreign tracepipe-schema fingerprint) and
oversized records are added on each topic; spans written with the old released span schema
are part of the valid workload. What each bad record must produce is what the worker's own
pure decoders (`SpanDecoder`, `bridge_batch`) say for it, so the test checks the broker and
the engine, not a second copy of the rules. Valid spans: none lost, none twice; every bad
record in the DLQ with a reason, `tracepipe_dlq_records_total` equal; the worker alive.
"""

from __future__ import annotations

import io
import json
import random
import time
from pathlib import Path

import fastavro
import pytest
from confluent_kafka import Producer
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from streams.broker.topics import TopicNames, ensure_topics
from streams.config import IngestConfig
from streams.deadletter import REASON_HEADER
from streams.ingest.bridge import bridge_batch
from streams.model.codec import SCHEMA_HEADER, AvroCodec, load_schema, schema_fingerprint
from streams.model.column_codec import SpanColumnsCodec, columns_from_spans
from streams.model.span import Span, make_span
from streams.paths import schemas_root
from streams.sdk.producer import PRODUCER_DEFAULTS
from streams.sink.decoder import SpanDecoder
from tests.integration.isolated import isolated_worker
from tests.reliability.harness import (
    WORKER_ENV,
    dead_letters,
    produce,
    record,
    reliability_scale,
    tally,
    wait_settled,
    wait_windows,
    webshop_workload,
)
from tests.unit.ingest.test_golden import otlp_proto_bytes
from tests.unit.sink.test_decoder import FakeEvent, FakeMessage

pytestmark = pytest.mark.integration

TRACES = 200
BAD_RECORDS = 60
MAX_RECORD_BYTES = 64 * 1024
LIMITS = IngestConfig(max_record_bytes=MAX_RECORD_BYTES)
SPAN = AvroCodec("span")
BATCH = AvroCodec("span", array=True)
COLUMNS = SpanColumnsCodec()
OTLP_TRACE = Path(__file__).parents[1] / "testdata" / "ingest" / "otlp_trace.json"
OLD_SPAN_SCHEMA = schemas_root() / "avro" / "history" / "span.v1.avsc"

BadRecord = tuple[str, bytes, list[tuple[str, bytes]]]
"""(topic kind, value, headers)."""


def old_schema_record(span: Span) -> tuple[bytes, list[tuple[str, bytes]]]:
    """`span` written with the first released span schema, under that schema's fingerprint."""
    schema = load_schema(OLD_SPAN_SCHEMA)
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema, span)
    return out.getvalue(), [(SCHEMA_HEADER, schema_fingerprint(schema).encode())]


def expected_letters(kind: str, value: bytes, headers: list[tuple[str, bytes]]) -> int | None:
    """Dead letters the worker's decoders make of one record, or None if any span gets through
    (then it is not poison)."""
    event = FakeEvent(FakeMessage(value, headers, partition=0, offset=0))
    if kind == "spans":
        by_partition, letters, _ = SpanDecoder(LIMITS).split([event])
        passed = sum(len(columns) for columns in by_partition.values())
    else:
        batch = bridge_batch(kind, [event], LIMITS, 6, COLUMNS)
        passed, letters = batch.spans, batch.rejected
    return None if passed else len(letters)


def _valid_otlp() -> bytes:
    return otlp_proto_bytes(OTLP_TRACE.read_bytes())


def _damaged_columns(at: int, byte: int) -> bytes:
    """A span columns message of two valid spans with one byte changed."""
    spans = [
        make_span("4bf92f3577b34da6a3ce929d0e0e4736", f"00f067aa0ba902b{i}", "op", "svc", 1, 2)
        for i in range(2)
    ]
    value = bytearray(COLUMNS.encode(columns_from_spans(spans)))
    value[at % len(value)] = byte
    return bytes(value)


single = [(SCHEMA_HEADER, SPAN.fingerprint.encode())]
batch = [(SCHEMA_HEADER, BATCH.fingerprint.encode())]
columns = [(SCHEMA_HEADER, COLUMNS.fingerprint.encode())]
poison = st.one_of(
    st.tuples(st.just("spans"), st.binary(max_size=300), st.just(single)),
    st.tuples(st.just("spans"), st.binary(max_size=300), st.just(batch)),
    st.tuples(st.just("spans"), st.binary(max_size=60), st.just([])),
    st.tuples(st.just("spans"), st.binary(max_size=300), st.just(columns)),
    st.tuples(
        st.just("spans"),
        st.builds(_damaged_columns, st.integers(0, 10_000), st.integers(0, 255)),
        st.just(columns),
    ),
    st.tuples(
        st.just("spans"),
        st.just(
            SPAN.encode(
                make_span("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "op", "svc", 1, 2)
            )
        ),
        st.text(alphabet="0123456789abcdef", min_size=1, max_size=16)
        .filter(lambda fp: not SPAN.knows(fp) and not BATCH.knows(fp) and not COLUMNS.knows(fp))
        .map(lambda fp: [(SCHEMA_HEADER, fp.encode())]),
    ),
    st.tuples(st.just("otlp"), st.integers(1, 400).map(lambda n: _valid_otlp()[:-n]), st.just([])),
    st.tuples(st.just("otlp"), st.text(max_size=60).map(lambda t: ("{" + t).encode()), st.just([])),
    st.tuples(st.just("zipkin"), st.text(max_size=80).map(str.encode), st.just([])),
    st.tuples(
        st.just("zipkin"),
        st.text(alphabet="0123456789abcdefXYZ", max_size=40).map(
            lambda t: json.dumps([{"traceId": t, "id": t, "name": "x", "timestamp": 1}]).encode()
        ),
        st.just([]),
    ),
)


def draw_poison(count: int, valid: list[Span]) -> list[tuple[BadRecord, int]]:
    """`count` hypothesis-drawn bad records, with the dead letters each must give; then
    spans of the workload under wrong fingerprints, and an oversized record per topic."""
    drawn: list[tuple[BadRecord, int]] = []

    @settings(
        max_examples=count,
        derandomize=True,  # the same records every run: CI must not be flaky
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(poison)
    def collect(bad: BadRecord) -> None:
        letters = expected_letters(*bad)
        assume(letters is not None)
        assert letters is not None
        drawn.append((bad, letters))

    collect()
    foreign = AvroCodec("trace").fingerprint
    for span, fingerprint in ((valid[0], "0123456789abcdef"), (valid[1], foreign)):
        bad = ("spans", SPAN.encode(span), [(SCHEMA_HEADER, fingerprint.encode())])
        drawn.append((bad, 1))
    for kind in ("spans", "otlp", "zipkin"):
        oversized = b"{" + b"x" * (MAX_RECORD_BYTES + 1)
        drawn.append(((kind, oversized, single if kind == "spans" else []), 1))
    return drawn


def test_poison_input_interleaved_with_a_valid_workload(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    scale = reliability_scale()
    bad_records = draw_poison(BAD_RECORDS * scale, webshop_workload(2, seed=12).spans)
    letters_expected = sum(n for _, n in bad_records)
    for (_, value, _), n in bad_records:
        assert n >= 1, value

    worker = isolated_worker(
        kafka_bootstrap,
        tmp_path,
        TRACEPIPE_INGEST_MAX_RECORD_BYTES=str(MAX_RECORD_BYTES),
        **WORKER_ENV,
    )
    ensure_topics(worker.settings.kafka)
    topics = TopicNames.from_prefix(worker.settings.kafka.topic_prefix)
    rng = random.Random(5)
    rng.shuffle(bad_records)

    worker.start()
    # Four rounds of whole traces, each followed by a quarter of the bad records: single-span
    # messages, span batches, single spans again, and single spans in the old released schema.
    rounds = [webshop_workload(TRACES * scale // 4, seed=11 + n) for n in range(4)]
    workload = rounds[0] + rounds[1] + rounds[2] + rounds[3]
    old_schema = rounds[3].spans
    # The SDK's settings, murmur2 partitioner included: a trace's spans share a partition.
    raw = Producer({**PRODUCER_DEFAULTS, "bootstrap.servers": worker.settings.kafka.bootstrap})
    try:
        for round_no, spans in enumerate(rounds):
            if round_no < 3:
                # Batches under the worker's lowered record limit: a batch over it would be
                # dead-lettered whole, valid spans and all (record-too-large).
                produce(
                    worker,
                    spans.spans,
                    batch_max_spans=500 if round_no % 2 else 1,
                    batch_max_bytes=MAX_RECORD_BYTES // 2,
                )
            else:
                for span in old_schema:
                    value, headers = old_schema_record(span)
                    raw.produce(topics.spans, value, span["trace_id"].encode(), headers=[*headers])
            for (kind, value, headers), _ in bad_records[round_no::4]:
                raw.produce(getattr(topics, kind), value, b"poison", headers=[*headers])
            assert raw.flush(30) == 0

        settled_s = wait_settled(worker, workload, time.monotonic(), 240)
        span_tally, trace_tally = tally(worker.reader(), workload)
        windows = wait_windows(worker, workload, 45)
        letters = dead_letters(worker, letters_expected)
        counters = worker.stats()["counters"].get("tracepipe_dlq_records_total", {})
        alive = worker.process is not None and worker.process.poll() is None
    finally:
        worker.stop()

    reasons: dict[str, int] = {}
    for letter in letters:
        reason = letter.get(REASON_HEADER, "")
        reasons[reason] = reasons.get(reason, 0) + 1
    result = record(
        "poison-input",
        workload.describe(
            f"{len(bad_records)} bad records on spans/otlp/zipkin, "
            f"{len(old_schema):,} spans in the old schema"
        ),
        span_tally,
        trace_tally,
        None,
        windows=windows,
        dlq=(letters_expected, len(letters), sum(counters.values())),
        notes=[f"dead letters by reason: {dict(sorted(reasons.items()))}"],
    )
    assert alive, "the worker died on poison input"
    assert settled_s is not None, f"the valid workload was not stored and assembled: {result}"
    assert (span_tally.losses, span_tally.duplicates, span_tally.unexpected) == (0, 0, 0), result
    assert trace_tally.complete == trace_tally.expected, result
    assert windows.exact == windows.expected, result
    assert len(letters) == letters_expected, result
    assert all(letter.get(REASON_HEADER) for letter in letters)
    assert sum(counters.values()) == letters_expected, counters
