"""A worker's producer keeps delivering to every topic it writes when a topic appears after it
started (aiokafka's partial metadata refresh; streams.worker.faust_app.track_topics)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # admin re-exports it, but not for mypy

from streams.worker.faust_app import track_topics

pytestmark = pytest.mark.integration

LINGER_MS = 500
"""Long enough that the first batch is still queued when the second topic's send refreshes."""


def create_topic(bootstrap: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, 1, 1)]).values():
        future.result(30)


async def deliver_after_a_new_topic(bootstrap: str, tracked: bool) -> bool:
    """Send to a topic known at start, then at once to one created after: whether the first
    record is delivered within 8 s."""
    known, created_later = f"known-{uuid.uuid4().hex}", f"later-{uuid.uuid4().hex}"
    create_topic(bootstrap, known)
    # A stranded batch expires after the request timeout: stop() then ends soon.
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=LINGER_MS, request_timeout_ms=12_000
    )
    await producer.start()
    try:
        # Faust refreshes after creating each changelog topic; tracking nothing yet, aiokafka
        # then fetches every topic's metadata: `known` is known, untracked.
        await producer.client.force_metadata_update()
        create_topic(bootstrap, created_later)
        if tracked:
            await track_topics(producer.client, [known, created_later])
        first = await producer.send(known, b"first", partition=0)
        await producer.send(created_later, b"second", partition=0)
        try:
            await asyncio.wait_for(first, 8)
        except TimeoutError:
            return False
        return True
    finally:
        await asyncio.wait_for(producer.stop(), 60)


def test_a_topic_created_after_start_does_not_strand_a_batch_of_a_tracked_topic(
    kafka_bootstrap: str,
) -> None:
    assert asyncio.run(deliver_after_a_new_topic(kafka_bootstrap, tracked=True))


def test_untracked_the_batch_is_stranded(kafka_bootstrap: str) -> None:
    # The failure track_topics works around: if aiokafka delivers here, it is fixed and the
    # workaround can go (this test then fails and says so).
    assert not asyncio.run(deliver_after_a_new_topic(kafka_bootstrap, tracked=False)), (
        "aiokafka now keeps a topic known at bootstrap across a partial metadata refresh: "
        "track_topics (streams/worker/faust_app.py) may be removed"
    )
