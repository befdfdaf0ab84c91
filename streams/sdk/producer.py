"""SpanProducer: canonical Avro spans to Kafka, keyed by trace id, idempotent and compressed."""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from streams.errors import TracepipeError
from streams.model.codec import AvroCodec
from streams.model.span import Span

log = logging.getLogger("tracepipe.sdk")


class ProducerQueueFullError(TracepipeError):
    """The local send queue stayed full: the broker is unreachable or slower than the service."""


class SpanProducer:
    """Publishes spans to `topic` with key = trace id, so all of a trace lands on one partition."""

    def __init__(
        self,
        bootstrap: str,
        topic: str = "tracepipe.spans",
        *,
        queue_max_spans: int = 200_000,
        queue_full_wait_s: float = 5.0,
        on_delivery_error: Callable[[KafkaError, bytes | None], None] | None = None,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        self.topic = topic
        self._codec = AvroCodec("span")
        self._headers = self._codec.headers
        self._queue_full_wait_s = queue_full_wait_s
        self._on_delivery_error = on_delivery_error
        self._lock = threading.Lock()
        self.delivered = 0
        self.failed = 0
        config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "lz4",
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": queue_max_spans,
            "queue.buffering.max.kbytes": 512 * 1024,
        }
        config.update(extra_config or {})
        self._producer = Producer(config)
        self._closed = False
        atexit.register(self.close)

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        with self._lock:
            if err is None:
                self.delivered += 1
                return
            self.failed += 1
        log.error("span delivery failed: %s", err)
        if self._on_delivery_error is not None:
            self._on_delivery_error(err, msg.key())

    def send(self, span: Span) -> None:
        """Queue one span for delivery; raise ProducerQueueFullError if the queue stays full."""
        self.send_encoded(span["trace_id"].encode(), self._codec.encode(span))

    def send_many(self, spans: Iterable[Span]) -> int:
        """Queue many spans; return how many were queued."""
        n = 0
        for span in spans:
            self.send(span)
            n += 1
        return n

    def send_encoded(self, key: bytes, value: bytes) -> None:
        """Queue an already-encoded span body under its trace-id key."""
        try:
            self._producer.produce(
                self.topic, value, key, headers=self._headers, on_delivery=self._delivered
            )
        except BufferError:
            # Serve delivery reports to make room, once, for a bounded time.
            self._producer.poll(self._queue_full_wait_s)
            try:
                self._producer.produce(
                    self.topic, value, key, headers=self._headers, on_delivery=self._delivered
                )
            except BufferError as err:
                raise ProducerQueueFullError(
                    f"the local queue for {self.topic} stayed full for {self._queue_full_wait_s}s; "
                    "check that Kafka is reachable, or raise queue_max_spans"
                ) from err
        self._producer.poll(0)

    def flush(self, timeout_s: float = 30.0) -> int:
        """Wait for queued spans to be delivered; return how many are still queued."""
        remaining: int = self._producer.flush(timeout_s)
        return remaining

    def close(self, timeout_s: float = 30.0) -> None:
        """Flush and stop; spans still queued after the timeout are logged as lost."""
        if self._closed:
            return
        self._closed = True
        remaining = self.flush(timeout_s)
        if remaining:
            log.error("%d spans were still queued when the producer closed", remaining)
        atexit.unregister(self.close)

    def __enter__(self) -> SpanProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
