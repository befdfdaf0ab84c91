"""SpanProducer: canonical Avro spans to Kafka, keyed by trace id, idempotent and compressed.

The hot path is one Python thread: encode (a specialised Avro encoder for the span schema,
byte-identical to fastavro's output and about twice as fast) then `produce`. librdkafka batches,
compresses and sends on its own threads. Delivery reports are requested for failures only, so
successful spans cost no Python callback; the delivered count is derived from what was sent.
"""

from __future__ import annotations

import atexit
import logging
import struct
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from streams.errors import SchemaError, TracepipeError
from streams.model.codec import AvroCodec
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
    "delivery.report.only.error": True,
}

# How many sends between two polls for (failure-only) delivery reports.
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


# ---------------------------------------------------------------------------------------------


class SpanProducer:
    """Publishes spans to `topic` with key = trace id, so all of a trace lands on one partition.

    Thread-safe. `delivered` and `failed` count delivery outcomes; `on_delivery_error` is called
    (from `poll`/`flush`, on the calling thread) for every span that could not be delivered.
    """

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
        self._encoder = SpanEncoder()
        self._headers = self._encoder.codec.headers
        self._queue_full_wait_s = queue_full_wait_s
        self._on_delivery_error = on_delivery_error
        self._lock = threading.Lock()
        self._sent = 0
        self.failed = 0
        self._last_failure_log = 0.0
        self._failures_since_log = 0
        config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            **PRODUCER_DEFAULTS,
            "queue.buffering.max.messages": queue_max_spans,
            "on_delivery": self._delivery_failed,
        }
        config.update(extra_config or {})
        self._producer = Producer(config)
        self._closed = False
        atexit.register(self.close)

    @property
    def sent(self) -> int:
        """Spans accepted into the local queue so far."""
        return self._sent

    @property
    def queued(self) -> int:
        """Spans in the local queue or in flight, not yet acknowledged or failed."""
        return len(self._producer)

    @property
    def delivered(self) -> int:
        """Spans the broker acknowledged (exact once `flush` has returned 0)."""
        return max(0, self._sent - self.failed - len(self._producer))

    def _delivery_failed(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:  # only when a caller overrides delivery.report.only.error
            return
        with self._lock:
            self.failed += 1
            self._failures_since_log += 1
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
            self._on_delivery_error(err, msg.key())

    def encode(self, span: Span) -> bytes:
        """The span's Avro body, as `send` would publish it."""
        return self._encoder.encode(span)

    def send(self, span: Span) -> None:
        """Queue one span for delivery; raise ProducerQueueFullError if the queue stays full."""
        self.send_encoded(span["trace_id"].encode(), self._encoder.encode(span))

    def send_many(self, spans: Iterable[Span]) -> int:
        """Queue many spans; return how many were queued."""
        encode = self._encoder.encode
        send = self.send_encoded
        n = 0
        for span in spans:
            send(span["trace_id"].encode(), encode(span))
            n += 1
        return n

    def send_encoded(self, key: bytes, value: bytes) -> None:
        """Queue an already-encoded span body under its trace-id key."""
        try:
            self._producer.produce(self.topic, value, key, headers=self._headers)
        except BufferError:
            self._wait_for_room(key, value)
        with self._lock:
            self._sent += 1
            sent = self._sent
        # Reports are failures only, so polling rarely is enough and saves a call per span.
        if not sent % _POLL_EVERY_SENDS:
            self._producer.poll(0)

    def _wait_for_room(self, key: bytes, value: bytes) -> None:
        # Successful deliveries raise no events, so poll in short slices and retry the produce.
        deadline = time.monotonic() + self._queue_full_wait_s
        while True:
            self._producer.poll(0.05)
            try:
                self._producer.produce(self.topic, value, key, headers=self._headers)
                return
            except BufferError as err:
                if time.monotonic() >= deadline:
                    raise ProducerQueueFullError(
                        f"the local queue for {self.topic} stayed full ({len(self._producer)} "
                        f"spans) for {self._queue_full_wait_s}s; check that Kafka is reachable, "
                        "or raise queue_max_spans"
                    ) from err

    def poll(self, timeout_s: float = 0.0) -> None:
        """Serve pending delivery-failure reports (sends do this every ~1000 spans anyway)."""
        self._producer.poll(timeout_s)

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
            log.error("%d spans were still queued when the producer for %s closed",
                      remaining, self.topic)
        atexit.unregister(self.close)

    def __enter__(self) -> SpanProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
