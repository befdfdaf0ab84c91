"""SpanProducer partitions trace ids exactly as Faust (aiokafka, Java's murmur2) does."""

from __future__ import annotations

import random
import uuid

import pytest
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import Consumer

from streams.broker.topics import ensure_topics
from streams.config import KafkaConfig
from streams.model.span import make_span
from streams.sdk import SpanProducer

pytestmark = pytest.mark.integration


def test_trace_ids_land_where_faust_would_put_them(kafka_bootstrap: str) -> None:
    topic = f"partitioning-{uuid.uuid4().hex[:8]}"
    partitions = 6
    ensure_topics(KafkaConfig(bootstrap=kafka_bootstrap, partitions=partitions), [topic])
    rng = random.Random(3)
    trace_ids = [f"{rng.getrandbits(128):032x}" for _ in range(200)]
    with SpanProducer(kafka_bootstrap, topic) as producer:
        for i, trace_id in enumerate(trace_ids):
            producer.send(make_span(trace_id, f"{i + 1:016x}", "op", "svc", 1, 2))

    consumer = Consumer(
        {"bootstrap.servers": kafka_bootstrap, "group.id": topic, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    seen: dict[bytes, int] = {}
    while len(seen) < len(trace_ids):
        msg = consumer.poll(30)
        assert msg is not None, f"only {len(seen)} of {len(trace_ids)} spans arrived"
        key, partition = msg.key(), msg.partition()
        assert isinstance(key, bytes) and partition is not None
        seen[key] = partition
    consumer.close()
    everywhere = list(range(partitions))
    faust_partition = {k: DefaultPartitioner()(k, everywhere, everywhere) for k in seen}
    assert seen == faust_partition
    assert len(set(seen.values())) == partitions  # and they do spread
