"""The local launcher against a real JVM: start, serve a topic, stay idempotent, stop."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # admin re-exports it, but not for mypy

import streams.broker.local as local_module
from streams.broker.local import LocalKafka
from streams.broker.probe import free_port
from streams.config import LocalKafkaConfig

pytestmark = pytest.mark.integration


def test_up_produce_consume_down(tmp_path: Path) -> None:
    # Its own broker rather than the session's: this test stops the broker it uses.
    broker = LocalKafka(
        LocalKafkaConfig(
            port=free_port(),
            controller_port=free_port(),
            data_dir=str(tmp_path / "kafka"),
            heap_mb=256,
        )
    )
    try:
        bootstrap = broker.up()
        assert bootstrap == broker.bootstrap

        state = broker.status()
        assert state.running
        assert state.pid is not None
        assert state.bootstrap == bootstrap
        assert state.version == "3.9.1"
        assert state.data_dir == tmp_path.resolve() / "kafka"
        assert state.log_file.exists()

        topic = f"launcher-{uuid.uuid4().hex[:8]}"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
            future.result(timeout=30)

        producer = Producer({"bootstrap.servers": bootstrap})
        producer.produce(topic, key=b"k", value=b"hello")
        assert producer.flush(30) == 0

        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"g-{topic}",
                "auto.offset.reset": "earliest",
            }
        )
        try:
            consumer.subscribe([topic])
            message = None
            for _ in range(60):
                message = consumer.poll(1.0)
                if message is not None and message.error() is None:
                    break
            assert message is not None and message.error() is None
            assert (message.key(), message.value()) == (b"k", b"hello")
        finally:
            consumer.close()

        assert broker.up() == bootstrap
        assert broker.status().pid == state.pid

        assert broker.down() is True
        after = broker.status()
        assert not after.running
        assert after.pid is None
        assert not broker.pid_file.exists()
        assert broker.down() is False
    finally:
        broker.down()


def test_cluster_id_starting_with_a_dash_formats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # base64url ids start with '-' one time in 64: the storage tool must not take it for a flag.
    monkeypatch.setattr(local_module, "new_cluster_id", lambda: "-" + "A" * 21)
    kafka = LocalKafka(
        LocalKafkaConfig(port=free_port(), data_dir=str(tmp_path / "kafka"), heap_mb=256)
    )
    try:
        kafka.up()
        assert kafka.status().running
    finally:
        kafka.down()
