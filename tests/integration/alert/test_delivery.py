"""Alert delivery on the real broker and chDB: a firing and a resolved event published on
tracepipe.alerts reach a webhook receiver that fails the first two POSTs exactly once each, in
order; both are stored in tracepipe_alerts and read back by `subscribe`; a receiver that always
fails gets them parked in the DLQ with reason `webhook-failed`; a worker stopped while it
retries delivers the event after its restart."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from streams.alert.events import AlertEvent
from streams.alert.subscribe import subscribe
from streams.broker.topics import TopicNames, ensure_topics
from streams.deadletter import DETAIL_HEADER, REASON_HEADER, STAGE_HEADER
from streams.model.codec import AvroCodec
from streams.query import quote
from streams.worker.alert_delivery import WEBHOOK_FAILED, WEBHOOK_STAGE
from streams.worker_process import WorkerProcess
from tests.integration.isolated import isolated_worker, running_worker
from tests.unit.alert.test_events import S, alert_event, resolved_event
from tests.unit.alert.test_webhook import Receiver

pytestmark = pytest.mark.integration

CODEC = AvroCodec("alert")


@dataclass
class Delivery:
    worker: WorkerProcess
    topics: TopicNames
    flaky: Receiver
    dead: Receiver
    events: list[AlertEvent]


@pytest.fixture(scope="module")
def delivery(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Delivery]:
    root: Path = tmp_path_factory.mktemp("alert-delivery")
    with (
        Receiver(fail_first=2) as flaky,
        Receiver(fail_first=10**9) as dead,
        running_worker(
            kafka_bootstrap,
            root,
            TRACEPIPE_ALERT_WEBHOOK_URLS=f"{flaky.url},{dead.url}",
            TRACEPIPE_ALERT_WEBHOOK_MAX_ATTEMPTS="4",
            TRACEPIPE_ALERT_WEBHOOK_INITIAL_BACKOFF_MS="100",
            TRACEPIPE_ALERT_WEBHOOK_MAX_BACKOFF_MS="200",
        ) as worker,
    ):
        now = time.time_ns()
        fingerprint = uuid.uuid4().hex[:16]
        events = [
            alert_event(fingerprint=fingerprint, emitted_at_unix_nano=now - 30 * S),
            resolved_event(fingerprint=fingerprint, emitted_at_unix_nano=now),
        ]
        topics = TopicNames.from_prefix(worker.settings.kafka.topic_prefix)
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        for event in events:
            producer.produce(
                topics.alerts,
                CODEC.encode(event.to_record()),
                event.fingerprint.encode(),
                headers=CODEC.headers,
            )
        # Not an alert record: the sink parks it in the DLQ, subscribers skip it.
        producer.produce(topics.alerts, b"\xff not avro", f"garbage-{fingerprint}".encode())
        assert producer.flush(30) == 0
        yield Delivery(worker, topics, flaky, dead, events)


def delivered_once(receiver: Receiver) -> Counter[tuple[str, str]]:
    """(fingerprint, status) of every alert the receiver answered with 2xx, counted."""
    return Counter(
        (alert["fingerprint"], alert["status"])
        for body in receiver.delivered()
        for alert in body["alerts"]
    )


def test_each_event_reaches_a_flaky_receiver_exactly_once_in_order(delivery: Delivery) -> None:
    fingerprint = delivery.events[0].fingerprint
    delivery.worker.wait_for(
        lambda: len(delivered_once(delivery.flaky)) == 2, 90, "both events delivered"
    )
    time.sleep(3)  # a duplicate delivery would show up by now
    assert delivered_once(delivery.flaky) == {
        (fingerprint, "firing"): 1,
        (fingerprint, "resolved"): 1,
    }
    assert [status for status, _ in delivery.flaky.posts] == [500, 500, 200, 200]
    assert [b["status"] for b in delivery.flaky.delivered()] == ["firing", "resolved"]
    counters = delivery.worker.stats()["counters"]
    assert counters["tracepipe_alert_webhook_deliveries_total"] == {
        "outcome=delivered": 2,
        "outcome=failed": 2,
    }


def test_every_transition_is_stored_and_subscribers_get_typed_events(
    delivery: Delivery, caplog: pytest.LogCaptureFixture
) -> None:
    fingerprint = delivery.events[0].fingerprint
    reader = delivery.worker.reader()
    sql = (
        f"SELECT count() AS n FROM tracepipe_alerts FINAL WHERE Fingerprint = {quote(fingerprint)}"
    )
    delivery.worker.wait_for(
        lambda: int(reader.query_dicts(sql)[0]["n"]) == 2, 90, "both events stored"
    )
    states = reader.query_dicts(
        "SELECT State, Sequence FROM tracepipe_alerts FINAL "
        f"WHERE Fingerprint = {quote(fingerprint)} ORDER BY Sequence"
    )
    assert [(r["State"], r["Sequence"]) for r in states] == [("firing", 2), ("resolved", 3)]

    received: list[AlertEvent] = []
    events = subscribe(
        delivery.worker.settings.kafka.bootstrap,
        delivery.topics.alerts,
        from_beginning=True,
        max_idle_s=20,
    )
    for event in events:
        if event.fingerprint == fingerprint:
            received.append(event)
        if len(received) == 2:
            break
    events.close()
    assert received == delivery.events

    resolved = subscribe(
        delivery.worker.settings.kafka.bootstrap,
        delivery.topics.alerts,
        state="resolved",
        service="payment",
        from_beginning=True,
        max_idle_s=5,
    )
    assert [e for e in resolved if e.fingerprint == fingerprint] == delivery.events[1:]
    assert "skipped an undecodable alert record" in caplog.text  # and went on


def test_an_always_failing_receiver_gets_the_events_parked_in_the_dlq(delivery: Delivery) -> None:
    fingerprint = delivery.events[0].fingerprint
    consumer = Consumer(
        {
            "bootstrap.servers": delivery.worker.settings.kafka.bootstrap,
            "group.id": f"check-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([delivery.topics.dlq])
    letters: list[tuple[AlertEvent, dict[str, str]]] = []
    garbage: list[dict[str, str]] = []
    deadline = time.monotonic() + 90
    try:
        while (len(letters) < 2 or not garbage) and time.monotonic() < deadline:
            msg = consumer.poll(1)
            if msg is None or msg.error() is not None:
                continue
            headers = {
                k: v.decode() for k, v in dict(msg.headers() or []).items() if isinstance(v, bytes)
            }
            if msg.key() == fingerprint.encode():
                letters.append((AlertEvent.from_record(CODEC.decode(msg.value() or b"")), headers))
            elif msg.key() == f"garbage-{fingerprint}".encode():
                garbage.append(headers)
    finally:
        consumer.close()
    assert [(g[STAGE_HEADER], g[REASON_HEADER] != "") for g in garbage] == [("alert-sink", True)]
    assert [event for event, _ in letters] == delivery.events
    for _event, headers in letters:
        assert headers[REASON_HEADER] == WEBHOOK_FAILED == "webhook-failed"
        assert headers[STAGE_HEADER] == WEBHOOK_STAGE
        assert (
            headers[DETAIL_HEADER]
            == f"{delivery.dead.url}: HTTP 500 Internal Server Error (4 attempts)"
        )
    assert len(delivery.dead.posts) == 8 and not delivery.dead.delivered()


def test_a_worker_stopped_mid_retry_delivers_after_restart(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    with Receiver(fail_first=10**9) as hook:
        first = isolated_worker(
            kafka_bootstrap,
            tmp_path,
            TRACEPIPE_ALERT_WEBHOOK_URLS=hook.url,
            TRACEPIPE_ALERT_WEBHOOK_MAX_ATTEMPTS="1000",
            TRACEPIPE_ALERT_WEBHOOK_INITIAL_BACKOFF_MS="300",
            TRACEPIPE_ALERT_WEBHOOK_MAX_BACKOFF_MS="300",
        )
        ensure_topics(first.settings.kafka)
        first.start()
        try:
            event = alert_event(fingerprint=uuid.uuid4().hex[:16])
            topics = TopicNames.from_prefix(first.settings.kafka.topic_prefix)
            producer = Producer({"bootstrap.servers": kafka_bootstrap})
            producer.produce(
                topics.alerts,
                CODEC.encode(event.to_record()),
                event.fingerprint.encode(),
                headers=CODEC.headers,
            )
            assert producer.flush(30) == 0
            first.wait_for(lambda: len(hook.posts) >= 3, 90, "the first failed attempts")
            time.sleep(4)  # past a commit interval: a wrongly acknowledged offset would commit
        finally:
            assert first.stop() == 0
        hook.fail_first = len(hook.posts)  # the receiver recovers
        env = {k: v for k, v in first.env.items() if k.startswith("TRACEPIPE_")}
        second = WorkerProcess(env, tmp_path / "worker-restarted.log")  # same group, same data
        second.start()
        try:
            second.wait_for(lambda: bool(hook.delivered()), 90, "delivery after the restart")
        finally:
            second.stop()
    assert [alert["fingerprint"] for body in hook.delivered() for alert in body["alerts"]] == [
        event.fingerprint
    ]
