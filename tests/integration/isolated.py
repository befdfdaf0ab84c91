"""Per-test isolation on the shared broker: own topic prefix, consumer group, chDB path, port."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Message

from streams.assemble.record import TRACE_SCHEMA
from streams.assemble.record_codec import TraceRecordsCodec
from streams.broker.topics import ensure_topics
from streams.config import IngestConfig
from streams.model.codec import SCHEMA_HEADER, AvroCodec
from streams.sink.decoder import SpanDecoder
from streams.worker_process import WORKER_COMMAND, WorkerProcess, isolated_env

ISOLATED_DEFAULTS = {
    "TRACEPIPE_KAFKA_PARTITIONS": "3",
    # Test data may carry old timestamps (golden files from 2023): keep it past the TTL.
    "TRACEPIPE_CLICKHOUSE_TTL_DAYS": "5000",
    "TRACEPIPE_SINK_BATCH_MAX_WAIT_MS": "200",
}
"""What every test worker runs with unless told otherwise."""


def isolated_worker(
    bootstrap: str, root: Path, command: Sequence[str] = WORKER_COMMAND, **extra_env: str
) -> WorkerProcess:
    """A worker (not started) whose topics, group, data and web port are this test's alone.

    `extra_env` overrides any TRACEPIPE_* variable (e.g. TRACEPIPE_KAFKA_PARTITIONS);
    `command` runs another worker module (see WorkerProcess).
    """
    env = {**ISOLATED_DEFAULTS, **extra_env}
    return WorkerProcess(isolated_env(bootstrap, root, "t", **env), root / "worker.log", command)


@contextmanager
def running_worker(bootstrap: str, root: Path, **extra_env: str) -> Iterator[WorkerProcess]:
    """An isolated worker with its topics created, started, and stopped on exit."""
    proc = isolated_worker(bootstrap, root, **extra_env)
    ensure_topics(proc.settings.kafka)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def read_messages(
    bootstrap: str,
    topic: str,
    done: Callable[[list[Message]], bool],
    timeout_s: float = 120.0,
) -> list[Message]:
    """Every message on `topic` from the beginning, once `done(messages)` holds (or the time is
    up); then a few more polls, so a record sent twice would show up."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout_s
    quiet_polls = 0
    try:
        while time.monotonic() < deadline and quiet_polls < 3:
            msg = consumer.poll(1)
            if msg is None or msg.error() is not None:
                if done(messages):
                    quiet_polls += 1
                continue
            messages.append(msg)
    finally:
        consumer.close()
    return messages


def read_topic(
    bootstrap: str,
    topic: str,
    codec: AvroCodec,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout_s: float = 120.0,
) -> list[dict[str, Any]]:
    """Every record on `topic` from the beginning, decoded, once `done(records)` holds (or the
    time is up); then a few more polls, so a record emitted twice would show up. A span batch
    (an Avro array of spans, for codec `span`) counts as its spans."""
    spans = SpanDecoder(IngestConfig()) if codec.name == "span" else None
    traces = TraceRecordsCodec() if codec.name == TRACE_SCHEMA else None

    def decoded(msg: Message) -> list[dict[str, Any]]:
        headers = dict(msg.headers() or [])
        raw = headers.get(SCHEMA_HEADER)
        fingerprint = raw.decode() if isinstance(raw, bytes) else None
        if spans is not None:
            columns, rejected, _ = spans.decode(msg.value() or b"", fingerprint)
            return [dict(record) for record in columns.spans()] + [dict(s) for s, _ in rejected]
        if traces is not None:
            return [dict(record) for record in traces.decode(msg.value() or b"", fingerprint)]
        return [codec.decode(msg.value() or b"", fingerprint)]

    def records_of(messages: list[Message]) -> list[dict[str, Any]]:
        return [record for msg in messages for record in decoded(msg)]

    return records_of(
        read_messages(bootstrap, topic, lambda seen: done(records_of(seen)), timeout_s)
    )
