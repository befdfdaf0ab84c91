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
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streams.errors import SchemaError, TracepipeError
from streams.model.codec import AvroCodec
from streams.model.column_codec import SpanColumnsBuilder, SpanColumnsCodec
from streams.model.columns import SpanColumns
from streams.model.partition import trace_partition
from streams.model.span import SPAN_KINDS, STATUS_CODES, Span

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
# Avro encoding of the Span record, by hand: fastavro spends most of its ~10 µs per span
# resolving the seven-branch attribute union generically. Anything this encoder does not
# recognise raises, and the caller falls back to fastavro, which also produces the error.

_KIND_INDEX = {kind: bytes([i << 1]) for i, kind in enumerate(SPAN_KINDS)}
_STATUS_INDEX = {code: bytes([i << 1]) for i, code in enumerate(STATUS_CODES)}
# Zigzag varints of 0..8191 precomputed: lengths, counts and small ints hit this table.
_SMALL_LIMIT = 8192
_PACK_DOUBLE = struct.Struct("<d").pack
_LONG_MIN = -(1 << 63)
_LONG_MAX = (1 << 63) - 1


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = [_varint((i << 1) ^ (i >> 63)) for i in range(_SMALL_LIMIT)]
# Two varint groups (14 bits) with their continuation bits set, for the low part of big longs.
_LOW14 = [bytes([(i & 0x7F) | 0x80, (i >> 7) | 0x80]) for i in range(1 << 14)]
# Varints of `zigzag >> 28` seen so far: nanosecond timestamps share these for ~134 ms.
_HIGH: dict[int, bytes] = {}
_HIGH_MAX = 4096


def _long(n: int) -> bytes:
    """The Avro (zigzag varint) encoding of a long."""
    if 0 <= n < _SMALL_LIMIT:
        return _SMALL[n]
    if not _LONG_MIN <= n <= _LONG_MAX:
        raise OverflowError(f"{n} does not fit an Avro long")
    z = (n << 1) ^ (n >> 63)
    high = z >> 28
    if not high:
        return _varint(z)
    # Timestamps dominate: table lookups for the low 28 bits, a cache for the rest.
    cached = _HIGH.get(high)
    if cached is None:
        if len(_HIGH) >= _HIGH_MAX:
            _HIGH.clear()
        cached = _HIGH[high] = _varint(high)
    return _LOW14[z & 0x3FFF] + _LOW14[(z >> 14) & 0x3FFF] + cached


# Length-prefixed UTF-8 of strings seen before: names, services, attribute keys and most
# attribute values repeat endlessly; trace and span ids never do and skip the cache.
_STRINGS: dict[str, bytes] = {}
_STRINGS_MAX = 16_384
_STRING_CACHE_MAX_BYTES = 256


def _string_miss(value: str) -> bytes:
    raw = value.encode()
    n = len(raw)
    encoded = (_SMALL[n] if n < _SMALL_LIMIT else _long(n)) + raw
    if n <= _STRING_CACHE_MAX_BYTES:
        if len(_STRINGS) >= _STRINGS_MAX:
            _STRINGS.clear()
        _STRINGS[value] = encoded
    return encoded


_string_hit = _STRINGS.get


def _id(value: str) -> bytes:
    raw = value.encode()
    n = len(raw)
    return (_SMALL[n] if n < _SMALL_LIMIT else _long(n)) + raw


# Union branch indexes of the attribute value type: null, boolean, long, double, string,
# bytes, array (the array's items use the same first six).
_NULL = b"\x00"
_TRUE = b"\x02\x01"
_FALSE = b"\x02\x00"
_LONG_TAG = b"\x04"
_DOUBLE_TAG = b"\x06"
_STRING_TAG = b"\x08"
_BYTES_TAG = b"\x0a"
_ARRAY_TAG = b"\x0c"


def _scalar(out: bytearray, value: Any) -> None:
    kind = type(value)
    if kind is str:
        out += _STRING_TAG
        out += _string_hit(value) or _string_miss(value)
    elif kind is int:
        out += _LONG_TAG
        out += _long(value)
    elif kind is bool:
        out += _TRUE if value else _FALSE
    elif kind is float:
        out += _DOUBLE_TAG
        out += _PACK_DOUBLE(value)
    elif value is None:
        out += _NULL
    elif kind is bytes:
        out += _BYTES_TAG
        out += _long(len(value))
        out += value
    else:
        raise TypeError(f"no fast path for {kind.__name__}")


def _attributes(out: bytearray, attributes: dict[str, Any]) -> None:
    if not attributes:
        out += b"\x00"
        return
    n = len(attributes)
    out += _SMALL[n] if n < _SMALL_LIMIT else _long(n)
    for key, value in attributes.items():
        out += _string_hit(key) or _string_miss(key)
        kind = type(value)
        if kind is str:
            out += _STRING_TAG
            out += _string_hit(value) or _string_miss(value)
        elif kind is list or kind is tuple:
            out += _ARRAY_TAG
            if value:
                out += _long(len(value))
                for item in value:
                    _scalar(out, item)
            out += b"\x00"
        else:
            _scalar(out, value)
    out += b"\x00"


def encode_span_fast(span: Span) -> bytes:
    """Schemaless Avro bytes of a span exactly as fastavro writes them; raises on anything odd."""
    hit = _string_hit
    miss = _string_miss
    out = bytearray(_id(span["trace_id"]))
    out += _id(span["span_id"])
    out += _id(span["parent_span_id"])
    value = span["trace_state"]
    out += hit(value) or miss(value)
    value = span["name"]
    out += hit(value) or miss(value)
    out += _KIND_INDEX[span["kind"]]
    out += _long(span["start_time_unix_nano"])
    out += _long(span["end_time_unix_nano"])
    out += _STATUS_INDEX[span["status_code"]]
    value = span["status_message"]
    out += hit(value) or miss(value)
    value = span["service_name"]
    out += hit(value) or miss(value)
    _attributes(out, span["resource_attributes"])
    value = span["scope_name"]
    out += hit(value) or miss(value)
    value = span["scope_version"]
    out += hit(value) or miss(value)
    _attributes(out, span["attributes"])
    events = span["events"]
    if events:
        out += _long(len(events))
        for event in events:
            out += _long(event["time_unix_nano"])
            value = event["name"]
            out += hit(value) or miss(value)
            _attributes(out, event["attributes"])
    out += b"\x00"
    links = span["links"]
    if links:
        out += _long(len(links))
        for link in links:
            out += _id(link["trace_id"])
            out += _id(link["span_id"])
            value = link["trace_state"]
            out += hit(value) or miss(value)
            _attributes(out, link["attributes"])
    out += b"\x00"
    value = span["source_format"]
    out += hit(value) or miss(value)
    return bytes(out)


class SpanEncoder:
    """Span -> Avro bytes: the fast encoder, falling back to fastavro for anything unusual."""

    def __init__(self, codec: AvroCodec | None = None) -> None:
        self.codec = codec or AvroCodec("span")

    def encode(self, span: Span) -> bytes:
        """Schemaless Avro bytes; SchemaError when the span does not match the schema."""
        try:
            return encode_span_fast(span)
        except (KeyError, TypeError, AttributeError, ValueError, OverflowError):
            pass
        try:
            # fastavro fills missing fields from schema defaults and names what is wrong.
            return self.codec.encode(span)
        except (KeyError, TypeError, AttributeError, ValueError, OverflowError) as err:
            raise SchemaError(f"span does not match the span schema: {err}") from err


def encode_span_batch(bodies: Sequence[bytes]) -> bytes:
    """A span batch's value: the Avro array (one block) of already-encoded span bodies."""
    if not bodies:
        return b"\x00"
    return _long(len(bodies)) + b"".join(bodies) + b"\x00"


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
