"""GroupLag reads a group's committed offsets from outside it: per partition and in total."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # admin re-exports it, but not for mypy

from streams.broker.lag import GroupLag

pytestmark = pytest.mark.integration


def test_committed_and_end_offsets_per_partition(kafka_bootstrap: str) -> None:
    topic = f"lag-{uuid.uuid4().hex[:10]}"
    group = f"group-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result()
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for partition, count in enumerate([5, 3, 0]):
        for _ in range(count):
            producer.produce(topic, b"span", partition=partition)
    assert producer.flush(30) == 0
    # The group commits partition 0 up to 2 and nothing on the others.
    member = Consumer(
        {"bootstrap.servers": kafka_bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    member.commit(offsets=[TopicPartition(topic, 0, 2)], asynchronous=False)
    member.close()

    lag = GroupLag(kafka_bootstrap, group, topic, 3)
    try:
        # Nothing committed: counted from the log start.
        assert lag.by_partition() == {0: (2, 5), 1: (0, 3), 2: (0, 0)}
        assert lag.read() == (3 + 3, 8)
    finally:
        lag.close()
        admin.delete_topics([topic])
