"""SpanProducer: spans to Kafka in span column batches, partitioned by trace id.

The hot path is one Python thread: pick the trace id's partition (murmur2, as Java's and
Faust's partitioner) and add the span to that partition's open batch of columns
(streams.model.column_codec). A batch becomes one Kafka message (schemas/avro/span_columns.avsc)
when it is full or `batch_linger_ms` old; librdkafka compresses and sends on its own threads.
With `batch_max_spans=1` every span is its own message in the single-span format (the
specialised Avro encoder below, byte-identical to fastavro's output). Faust costs the
worker about 130 µs of CPU per message whatever its size, so one span per message would cap a
worker near 5,000 spans/s; a batch of hundreds makes that cost per span negligible.
"""

from __future__ import annotations

import atexit
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streams.errors import TracepipeError
from streams.model.column_builder import SpanColumnsBuilder
from streams.model.column_codec import SpanColumnsCodec
from streams.model.columns import SpanColumns
from streams.model.partition import trace_partition
from streams.model.span import Span
from streams.model.span_encoder import SpanEncoder

log = logging.getLogger("tracepipe.sdk")

# librdkafka settings tuned for throughput: large batches (one request per partition carries
# thousands of spans), a short linger so a busy service fills them and a quiet one still sends
# within a few tens of ms, lz4 (cheapest of the codecs the worker's aiokafka reads via cramjam).
PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    # Java's and aiokafka's (Faust's) partitioner: a trace id key lands on the same partition
    # whoever produces it, so Faust tables stay co-partitioned with tracepipe.spans.
    "partitioner": "murmur2_random",
    "compression.type": "lz4",
    "linger.ms": 50,
    "batch.size": 1_000_000,
    "batch.num.messages": 100_000,
    "queue.buffering.max.kbytes": 512 * 1024,
    # SpanProducer bounds what is in flight itself (queue_max_spans, counted in spans).
    "queue.buffering.max.messages": 1_000_000,
}

# How many sends between two polls for delivery reports (the linger thread polls too).
_POLL_EVERY_SENDS = 1024
# Delivery failures are logged at most this often (plus the first), with a running count.
_FAILURE_LOG_INTERVAL_S = 10.0


class ProducerQueueFullError(TracepipeError):
    """The local send queue stayed full: the broker is unreachable or slower than the service."""


# ---------------------------------------------------------------------------------------------


class _OpenBatch:
    """Spans waiting to become one span columns message on one partition."""

    __slots__ = ("columns", "opened_at", "trace_ids")

    def __init__(self, opened_at: float) -> None:
        self.columns = SpanColumnsBuilder()
        self.trace_ids: list[str] = []
        self.opened_at = opened_at


class SpanProducer:
    """Publishes spans to `topic` in span batches: every span of a trace lands on the partition
    of its trace id, so the worker sees a trace's spans together.

    `batch_max_spans=1` publishes one span per message keyed by trace id (the format of
    tracepipe before span batches; the worker reads both). Thread-safe. `delivered` and
    `failed` count spans; `on_delivery_error(err, trace_id_key)` is called once per span that
    could not be delivered (from `poll`/`flush` or the producer's linger thread).
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str = "tracepipe.spans",
        *,
        batch_max_spans: int = 500,
        batch_max_bytes: int = 512 * 1024,
        batch_linger_ms: int = 20,
        partitions: int | None = None,
        queue_max_spans: int = 200_000,
        queue_full_wait_s: float = 5.0,
        metadata_timeout_s: float = 10.0,
        on_delivery_error: Callable[[KafkaError, bytes | None], None] | None = None,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        if batch_max_spans < 1 or batch_max_bytes < 1 or batch_linger_ms < 0:
            raise TracepipeError(
                "SpanProducer needs batch_max_spans >= 1, batch_max_bytes >= 1 and "
                "batch_linger_ms >= 0"
            )
        self.topic = topic
        self._encoder = SpanEncoder()
        self._span_headers = self._encoder.codec.headers
        self._columns_codec = SpanColumnsCodec()
        self._batch_headers = self._columns_codec.headers
        self._batch_max_spans = batch_max_spans
        self._batch_max_bytes = batch_max_bytes
        self._linger_s = batch_linger_ms / 1000
        self._partitions = partitions
        self._metadata_timeout_s = metadata_timeout_s
        self._queue_max_spans = queue_max_spans
        self._queue_full_wait_s = queue_full_wait_s
        self._on_delivery_error = on_delivery_error
        self._lock = threading.Lock()
        self._open: dict[int, _OpenBatch] = {}
        self._last_trace: tuple[str, int] = ("", 0)
        self._sent = 0
        self._delivered = 0
        self.failed = 0
        self._last_failure_log = 0.0
        self._failures_since_log = 0
        config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            **PRODUCER_DEFAULTS,
            "on_delivery": self._span_reported,
            # librdkafka's own lines through Python logging, not straight onto stderr (served
            # by the polls of the linger thread and of flush).
            "logger": log,
        }
        config.update(extra_config or {})
        self._producer = Producer(config)
        self._closed = False
        self._stopping = threading.Event()
        self._linger_thread: threading.Thread | None = None
        if batch_max_spans > 1:
            # Sends a quiet service's open batches after the linger, and serves delivery reports.
            self._linger_thread = threading.Thread(
                target=self._linger_loop, name=f"span-producer-{topic}", daemon=True
            )
            self._linger_thread.start()
        atexit.register(self.close)

    @property
    def sent(self) -> int:
        """Spans accepted so far."""
        return self._sent

    @property
    def queued(self) -> int:
        """Spans accepted but not yet acknowledged or failed (open batches included)."""
        return self._sent - self._delivered - self.failed

    @property
    def delivered(self) -> int:
        """Spans the broker acknowledged (exact once `flush` has returned 0)."""
        return self._delivered

    def _span_reported(self, err: KafkaError | None, msg: Message) -> None:
        self._reported(err, [msg.key()])

    def _batch_reported(self, trace_ids: list[str], err: KafkaError | None, msg: Message) -> None:
        keys: list[bytes | None]
        keys = [t.encode() for t in trace_ids] if err is not None else [None] * len(trace_ids)
        self._reported(err, keys)

    def _reported(self, err: KafkaError | None, keys: list[bytes | None]) -> None:
        with self._lock:
            if err is None:
                self._delivered += len(keys)
                return
            self.failed += len(keys)
            self._failures_since_log += len(keys)
            now = time.monotonic()
            # One line per failure would flood the log exactly when the broker is down.
            should_log = now - self._last_failure_log >= _FAILURE_LOG_INTERVAL_S
            if should_log:
                count, self._failures_since_log = self._failures_since_log, 0
                self._last_failure_log = now
        if should_log:
            log.error("span delivery to %s failed (%d since last report, %d in all): %s",
                      self.topic, count, self.failed, err)
        if self._on_delivery_error is not None:
            for key in keys:
                self._on_delivery_error(err, key)

    def encode(self, span: Span) -> bytes:
        """The span's Avro body, as `send` would publish it."""
        return self._encoder.encode(span)

    def send(self, span: Span) -> None:
        """Queue one span for delivery; raise SchemaError if it does not fit the span schema,
        ProducerQueueFullError if the queue stays full."""
        if self.queued >= self._queue_max_spans:
            self._wait_for_room()
        trace_id = span["trace_id"]
        if self._batch_max_spans == 1:
            body = self._encoder.encode(span)
            with self._lock:
                self._sent += 1
            self._produce(body, trace_id.encode(), None, self._span_headers, None)
        else:
            partition = self._partition_of(trace_id)
            now = time.monotonic()
            with self._lock:
                batch = self._open.get(partition)
                if batch is None:
                    batch = self._open[partition] = _OpenBatch(now)
                batch.columns.add(span)
                self._sent += 1
                batch.trace_ids.append(trace_id)
                full = len(batch.trace_ids) >= self._batch_max_spans
                if full:
                    del self._open[partition]
            if full:
                self._produce_batch(partition, batch)
        if not self._sent % _POLL_EVERY_SENDS:
            self._producer.poll(0)

    def send_many(self, spans: Iterable[Span]) -> int:
        """Queue many spans; return how many were queued."""
        send = self.send
        n = 0
        for span in spans:
            send(span)
            n += 1
        return n

    def _partition_of(self, trace_id: str) -> int:
        # Spans of one trace usually come together: remember the last trace's partition.
        last_trace, last_partition = self._last_trace
        if trace_id == last_trace:
            return last_partition
        partition = trace_partition(trace_id, self._partitions or self._partition_count())
        self._last_trace = (trace_id, partition)
        return partition

    def _partition_count(self) -> int:
        try:
            metadata = self._producer.list_topics(self.topic, timeout=self._metadata_timeout_s)
        except KafkaException as err:
            raise TracepipeError(
                f"cannot read the partitions of {self.topic} from Kafka within "
                f"{self._metadata_timeout_s}s ({err}); check that Kafka is reachable"
            ) from err
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise TracepipeError(
                f"topic {self.topic} does not exist on the broker; create it with "
                "`tracepipe topics create` (or start a worker, which creates it)"
            )
        self._partitions = len(topic.partitions)
        return self._partitions

    def _produce_batch(self, partition: int, batch: _OpenBatch) -> None:
        self._produce_columns(partition, batch.columns.build(), batch.trace_ids)

    def _produce_columns(self, partition: int, columns: SpanColumns, trace_ids: list[str]) -> None:
        for start, stop, value in self._columns_codec.encode_chunks(columns, self._batch_max_bytes):
            report = functools.partial(self._batch_reported, trace_ids[start:stop])
            self._produce(value, None, partition, self._batch_headers, report)

    def _produce(
        self,
        value: bytes,
        key: bytes | None,
        partition: int | None,
        headers: list[tuple[str, str | bytes | None]],
        report: Callable[[KafkaError | None, Message], None] | None,
    ) -> None:
        kwargs: dict[str, Any] = {"headers": headers}
        if partition is not None:
            kwargs["partition"] = partition
        if report is not None:
            kwargs["on_delivery"] = report
        deadline = time.monotonic() + self._queue_full_wait_s
        while True:
            try:
                self._producer.produce(self.topic, value, key, **kwargs)
                return
            except BufferError as err:
                # librdkafka's own queue is full: serve reports and retry until the deadline.
                self._producer.poll(0.05)
                if time.monotonic() >= deadline:
                    raise self._queue_full() from err

    def _wait_for_room(self) -> None:
        # Delivery reports free room: poll in short slices until under the bound or timed out.
        deadline = time.monotonic() + self._queue_full_wait_s
        while self.queued >= self._queue_max_spans:
            if time.monotonic() >= deadline:
                raise self._queue_full()
            self._producer.poll(0.05)

    def _queue_full(self) -> ProducerQueueFullError:
        return ProducerQueueFullError(
            f"the local queue for {self.topic} stayed full ({self.queued} spans) for "
            f"{self._queue_full_wait_s}s; check that Kafka is reachable, or raise queue_max_spans"
        )

    def _linger_loop(self) -> None:
        interval = max(self._linger_s / 2, 0.001)
        while not self._stopping.wait(interval):
            try:
                self._send_open_batches(older_than_s=self._linger_s)
                self._producer.poll(0)
            except (TracepipeError, KafkaException) as err:
                # The next send raises to the caller; this thread must keep sending.
                log.error("sending open span batches to %s failed: %s", self.topic, err)

    def _send_open_batches(self, older_than_s: float = 0.0) -> None:
        now = time.monotonic()
        with self._lock:
            due = [p for p, b in self._open.items() if now - b.opened_at >= older_than_s]
            batches = [(p, self._open.pop(p)) for p in due]
        for partition, batch in batches:
            self._produce_batch(partition, batch)

    def poll(self, timeout_s: float = 0.0) -> None:
        """Serve pending delivery reports (sends and the linger thread do this anyway)."""
        self._producer.poll(timeout_s)

    def flush(self, timeout_s: float = 30.0) -> int:
        """Send the open batches and wait for delivery; return how many spans are still queued."""
        self._send_open_batches()
        self._producer.flush(timeout_s)
        return self.queued

    def close(self, timeout_s: float = 30.0) -> None:
        """Flush and stop; spans still queued after the timeout are logged as lost."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        if self._linger_thread is not None:
            self._linger_thread.join()
        remaining = self.flush(timeout_s)
        if remaining:
            log.error("%d spans were still queued when the producer for %s closed",
                      remaining, self.topic)
        atexit.unregister(self.close)

    def __enter__(self) -> SpanProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
