"""SpanProducer partitions trace ids exactly as Faust (aiokafka, Java's murmur2) does, in span
batches and one span per message alike."""

from __future__ import annotations

import random
import uuid

import pytest
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import Consumer

from streams.broker.topics import ensure_topics
from streams.config import KafkaConfig
from streams.model.codec import SCHEMA_HEADER, AvroCodec
from streams.model.column_codec import SpanColumnsCodec
from streams.model.span import make_span
from streams.sdk import SpanProducer

pytestmark = pytest.mark.integration

SPAN, COLUMNS = AvroCodec("span"), SpanColumnsCodec()


@pytest.mark.parametrize("batch_max_spans", [500, 1])
def test_trace_ids_land_where_faust_would_put_them(
    kafka_bootstrap: str, batch_max_spans: int
) -> None:
    topic = f"partitioning-{uuid.uuid4().hex[:8]}"
    partitions = 6
    ensure_topics(KafkaConfig(bootstrap=kafka_bootstrap, partitions=partitions), [topic])
    rng = random.Random(3)
    trace_ids = [f"{rng.getrandbits(128):032x}" for _ in range(200)]
    with SpanProducer(kafka_bootstrap, topic, batch_max_spans=batch_max_spans) as producer:
        for i, trace_id in enumerate(trace_ids):
            producer.send(make_span(trace_id, f"{i + 1:016x}", "op", "svc", 1, 2))
            producer.send(make_span(trace_id, f"{i + 1001:016x}", "op", "svc", 1, 2))
        assert producer.flush() == 0 and producer.delivered == 400

    consumer = Consumer(
        {"bootstrap.servers": kafka_bootstrap, "group.id": topic, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    seen: dict[bytes, set[int]] = {}
    spans = 0
    while spans < 2 * len(trace_ids):
        msg = consumer.poll(30)
        assert msg is not None, f"only {spans} of {2 * len(trace_ids)} spans arrived"
        partition, value = msg.partition(), msg.value() or b""
        assert partition is not None
        headers = {
            k: v.decode() for k, v in dict(msg.headers() or []).items() if isinstance(v, bytes)
        }
        fingerprint = headers[SCHEMA_HEADER]
        if COLUMNS.knows(fingerprint):
            decoded = COLUMNS.decode(value, fingerprint).spans()
        else:
            decoded = [SPAN.decode(value, fingerprint)]
            assert batch_max_spans == 1  # the SDK batches spans as columns
            assert msg.key() == decoded[0]["trace_id"].encode()
        for span in decoded:
            seen.setdefault(span["trace_id"].encode(), set()).add(partition)
        spans += len(decoded)
    consumer.close()
    assert spans == 2 * len(trace_ids)
    everywhere = list(range(partitions))
    faust_partition = {k: {DefaultPartitioner()(k, everywhere, everywhere)} for k in seen}
    assert seen == faust_partition
    assert {p for ps in seen.values() for p in ps} == set(everywhere)  # and they do spread
