"""The span sink on the real broker and the real chDB engine: every span stored exactly once."""

from __future__ import annotations

import random
import time

import pytest
from confluent_kafka import Consumer, Message, Producer

from streams.broker.topics import TopicNames
from streams.deadletter import (
    ORIGINAL_BYTES_HEADER,
    REASON_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    SOURCE_TOPIC_HEADER,
)
from streams.model.codec import AvroCodec
from streams.model.span import Span, make_span
from streams.query import count_spans
from streams.sdk import SpanProducer
from streams.worker_process import WorkerProcess

pytestmark = pytest.mark.integration


def make_traces(rng: random.Random, traces: int, spans_per_trace: int) -> list[Span]:
    # Recent timestamps: rows older than the table TTL (clickhouse.ttl_days) are dropped
    # on insert.
    now_ns = time.time_ns()
    spans: list[Span] = []
    for _ in range(traces):
        trace_id = f"{rng.getrandbits(128):032x}"
        root = f"{rng.getrandbits(64):016x}"
        spans.append(
            make_span(trace_id, root, "GET /", "frontend", now_ns, now_ns + 9_000, kind="SERVER")
        )
        for i in range(spans_per_trace - 1):
            spans.append(
                make_span(
                    trace_id,
                    f"{rng.getrandbits(64):016x}",
                    f"op{i}",
                    f"svc{i % 4}",
                    now_ns + 2_000,
                    now_ns + 3_000,
                    parent_span_id=root,
                )
            )
    rng.shuffle(spans)
    return spans


def test_ten_thousand_spans_stored_exactly_once(worker: WorkerProcess) -> None:
    spans = make_traces(random.Random(7), traces=1_000, spans_per_trace=10)
    topics = TopicNames.from_prefix(worker.settings.kafka.topic_prefix)
    with SpanProducer(worker.settings.kafka.bootstrap, topics.spans) as producer:
        producer.send_many(spans)
    assert producer.delivered == 10_000 and producer.failed == 0

    reader = worker.reader()
    worker.wait_for(lambda: count_spans(reader) >= 10_000, 120, "10,000 spans in otel_traces")
    stats = reader.query_dicts(
        "SELECT count() AS n, uniqExact(TraceId, SpanId) AS distinct_spans, "
        "uniqExact(TraceId) AS traces FROM otel_traces"
    )
    assert stats == [{"n": 10_000, "distinct_spans": 10_000, "traces": 1_000}]
    stored = {
        (r["TraceId"], r["SpanId"], r["ParentSpanId"])
        for r in reader.query_dicts("SELECT TraceId, SpanId, ParentSpanId FROM otel_traces")
    }
    assert stored == {(s["trace_id"], s["span_id"], s["parent_span_id"]) for s in spans}


def test_malformed_records_go_to_the_dlq_and_valid_ones_are_stored(
    worker: WorkerProcess,
) -> None:
    topics = TopicNames.from_prefix(worker.settings.kafka.topic_prefix)
    codec = AvroCodec("span")
    rng = random.Random(11)
    valid = make_traces(rng, traces=50, spans_per_trace=4)
    bad_values = [b"", b"not avro at all", codec.encode(valid[0])[:-5], b"\x40" + b"z" * 10]
    bootstrap = worker.settings.kafka.bootstrap
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    # Interleave: every bad record sits between valid spans of the same partitions.
    for i, span in enumerate(valid):
        producer.produce(
            topics.spans, codec.encode(span), span["trace_id"].encode(), headers=codec.headers
        )
        if i % 50 == 25:
            producer.produce(topics.spans, bad_values[(i // 50) % len(bad_values)], b"bad")
    for value in bad_values:
        producer.produce(topics.spans, value, b"bad")
    assert producer.flush(30) == 0
    n_bad = len(bad_values) + len(range(25, len(valid), 50))

    reader = worker.reader()
    worker.wait_for(lambda: count_spans(reader) >= len(valid), 120, "valid spans stored")
    assert count_spans(reader) == len(valid)

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "dlq-check",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topics.dlq])
    letters: list[Message] = []
    while len(letters) < n_bad:
        msg = consumer.poll(30)
        assert msg is not None, f"only {len(letters)} of {n_bad} dead letters arrived"
        assert msg.error() is None
        letters.append(msg)
    assert consumer.poll(3) is None, "more dead letters than malformed records"
    consumer.close()
    for msg in letters:
        headers = {
            k: v.decode() for k, v in dict(msg.headers() or []).items() if isinstance(v, bytes)
        }
        assert headers[REASON_HEADER] in {"empty", "avro-decode", "avro-trailing-bytes"}
        assert headers[SOURCE_TOPIC_HEADER] == topics.spans
        assert int(headers[SOURCE_OFFSET_HEADER]) >= 0
        assert msg.value() in bad_values or msg.value() is None
    assert sorted((m.value() or b"") for m in letters) == sorted(
        [bad_values[(i // 50) % len(bad_values)] for i in range(25, len(valid), 50)] + bad_values
    )


def test_span_batches_keep_their_good_spans_and_send_bad_ones_alone_to_the_dlq(
    worker: WorkerProcess,
) -> None:
    topics = TopicNames.from_prefix(worker.settings.kafka.topic_prefix)
    span_codec, batch_codec = AvroCodec("span"), AvroCodec("span", array=True)
    valid = make_traces(random.Random(13), traces=30, spans_per_trace=5)
    bad = make_span("not-hex", "00f067aa0ba902b7", "op", "svc", time.time_ns(), time.time_ns() + 9)
    good_batch = batch_codec.encode(valid[:100])
    mixed_batch = batch_codec.encode([*valid[100:], bad])
    broken_batch = batch_codec.encode(valid[:10])[:-9]
    bootstrap = worker.settings.kafka.bootstrap
    before = count_spans(worker.reader())
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for value in (good_batch, mixed_batch, broken_batch):
        producer.produce(topics.spans, value, partition=1, headers=batch_codec.headers)
    assert producer.flush(30) == 0

    reader = worker.reader()
    ids = ", ".join(f"'{s['trace_id']}'" for s in valid)

    def stored() -> int:
        sql = f"SELECT count() AS n FROM otel_traces WHERE TraceId IN ({ids})"
        return int(reader.query_dicts(sql)[0]["n"])

    worker.wait_for(lambda: stored() >= len(valid), 120, "the batches' valid spans stored")
    assert stored() == len(valid)
    assert count_spans(reader) == before + len(valid)

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "dlq-batches", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topics.dlq])
    letters: dict[str, bytes] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(letters) < 2:
        msg = consumer.poll(1)
        if msg is None or msg.error() is not None:
            continue
        headers = {
            k: v.decode() for k, v in dict(msg.headers() or []).items() if isinstance(v, bytes)
        }
        if headers[SOURCE_PARTITION_HEADER] == "1":
            letters[headers[REASON_HEADER]] = msg.value() or b""
    consumer.close()
    assert span_codec.decode(letters["invalid-trace-id"], span_codec.fingerprint) == bad
    assert letters["avro-decode"] == broken_batch


def test_a_rejected_record_too_large_to_resend_is_dead_lettered_cut(
    worker: WorkerProcess,
) -> None:
    # The broker takes ~1 MiB records; the worker's producer sends at most 1,000,000 bytes: a
    # whole dead letter of this record crashed the span sink (MessageSizeTooLargeError) and
    # nothing after it on its partition was stored.
    topics = TopicNames.from_prefix(worker.settings.kafka.topic_prefix)
    codec = AvroCodec("span")
    huge = b"\x40" + b"z" * 1_020_000
    after = make_traces(random.Random(17), traces=10, spans_per_trace=3)
    bootstrap = worker.settings.kafka.bootstrap
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "message.max.bytes": 1048576}
    )
    producer.produce(topics.spans, huge, b"huge", partition=2)
    for span in after:
        producer.produce(topics.spans, codec.encode(span), partition=2, headers=codec.headers)
    assert producer.flush(30) == 0

    reader = worker.reader()
    worker.wait_for(lambda: count_spans(reader) >= len(after), 120, "the spans after it stored")
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "dlq-huge", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topics.dlq])
    letter: Message | None = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and letter is None:
        msg = consumer.poll(1)
        if msg is not None and msg.error() is None and msg.key() == b"huge":
            letter = msg
    consumer.close()
    assert letter is not None, "no dead letter for the 1 MB record"
    headers = dict(letter.headers() or [])
    assert headers[ORIGINAL_BYTES_HEADER] == str(len(huge)).encode()
    assert huge.startswith(letter.value() or b"x") and len(letter.value() or b"") > 800_000
    assert worker.process is not None and worker.process.poll() is None
