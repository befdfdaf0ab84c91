"""Subscribing to alert events from Python: an iterator of typed `AlertEvent`s.

    from streams.alert.subscribe import subscribe

    for event in subscribe("127.0.0.1:9092", "tracepipe.alerts", state="firing"):
        print(event.rule, event.service, event.comparison())

A plain Kafka consumer (confluent-kafka) in a consumer group of its own unless one is given.
Records that cannot be decoded are logged and skipped; the iterator never stops on them.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Generator, Mapping, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError

from streams.alert.events import AlertEvent
from streams.errors import DecodeError
from streams.model.codec import SCHEMA_HEADER, AvroCodec

log = logging.getLogger("tracepipe.alert")


def _schema_header(headers: Mapping[str, Any] | Sequence[tuple[str, Any]] | None) -> str | None:
    items = headers.items() if isinstance(headers, Mapping) else headers or ()
    for key, value in items:
        if key == SCHEMA_HEADER and value is not None:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def subscribe(
    bootstrap: str,
    topic: str,
    *,
    state: str | None = None,
    service: str | None = None,
    from_beginning: bool = False,
    group_id: str | None = None,
    poll_timeout_s: float = 1.0,
    max_idle_s: float | None = None,
) -> Generator[AlertEvent, None, None]:
    """Alert events from `topic` as they arrive, optionally only one `state` and `service`.

    Reads from the end of the topic (new events only) unless `from_beginning`. Without
    `group_id` each call is a fresh consumer group, so every subscriber sees every event; with
    one, offsets are committed and the group's members share the partitions. `poll_timeout_s`
    bounds how long a poll blocks (and so how quickly Ctrl-C is noticed); with `max_idle_s`
    the iteration ends after that long without a record (None: it never ends by itself).
    Closing the iterator (or leaving a `for` loop) closes the consumer.
    """
    codec = AvroCodec("alert")
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group_id or f"tracepipe-alerts-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.auto.commit": group_id is not None,
            # librdkafka's own lines through Python logging (served by poll), not onto stderr.
            "logger": log,
        }
    )
    reported: set[str] = set()
    try:
        consumer.subscribe([topic])
        last_record = time.monotonic()
        while True:
            msg = consumer.poll(poll_timeout_s)
            if msg is None:
                if max_idle_s is not None and time.monotonic() - last_record >= max_idle_s:
                    return
                continue
            last_record = time.monotonic()
            error = msg.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF and str(error) not in reported:
                    reported.add(str(error))
                    log.warning("alerts consumer on %s: %s", topic, error)
                continue
            try:
                record = codec.decode(msg.value() or b"", _schema_header(msg.headers()))
                event = AlertEvent.from_record(record)
            except (DecodeError, KeyError, TypeError, ValueError) as err:
                log.warning(
                    "skipped an undecodable alert record at %s[%d]@%d: %s",
                    msg.topic(),
                    msg.partition(),
                    msg.offset(),
                    err,
                )
                continue
            if state is not None and event.state != state:
                continue
            if service is not None and event.service != service:
                continue
            yield event
    finally:
        consumer.close()
