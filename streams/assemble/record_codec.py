"""The trace record on tracepipe.traces: Avro bytes written by hand (`TraceRecordEncoder`), a
record too large for a message sent without its spans (`encode_within`), records batched into
Avro arrays (`trace_batches`) and messages read back (`TraceRecordsCodec`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from streams.assemble.record import TRACE_SCHEMA, TraceRecord
from streams.errors import SchemaError
from streams.model.codec import AvroCodec
from streams.model.span_encoder import (
    SpanEncoder,
    avro_array,
    avro_boolean,
    avro_id,
    avro_id_array,
    avro_longs,
    avro_string,
)
from streams.paths import schemas_root

_FIELD_ORDER = (
    "trace_id", "version", "completion", "start_time_unix_nano", "end_time_unix_nano",
    "duration_ns", "span_count", "error_count", "root_service", "root_operation", "services",
    "depth", "clock_skew_adjusted", "adjusted_span_ids", "warnings", "critical_path",
    "critical_path_self_time", "dropped_span_count", "spans", "span_ids", "emitted_at_unix_nano",
    "sampled", "sampling_policy", "previous_span_count", "calls", "error_origins",
)  # fmt: skip


class TraceRecordEncoder:
    """Trace record -> Avro bytes identical to fastavro's, written by hand from the Avro
    primitives (streams.model.span_encoder): fastavro's generic writer cost ~47 µs per web-shop
    trace record, the largest cost of a sweep after building the record. A record the hand path
    does not take (a field of an unexpected type) goes through fastavro, which writes the same
    bytes or raises its own error."""

    def __init__(self, codec: AvroCodec | None = None) -> None:
        self.codec = codec or AvroCodec(TRACE_SCHEMA)
        raw = json.loads((schemas_root() / "avro" / f"{TRACE_SCHEMA}.avsc").read_text())
        names = tuple(f["name"] for f in raw["fields"])
        if names != _FIELD_ORDER:
            raise SchemaError(
                f"{TRACE_SCHEMA}.avsc fields changed: update TraceRecordEncoder ({names})"
            )
        self._spans = SpanEncoder()

    def encode(self, record: TraceRecord) -> bytes:
        """Schemaless Avro bytes of the record, as AvroCodec(TRACE_SCHEMA).encode writes them."""
        return self._encode_one(record)

    def encode_many(self, records: Sequence[TraceRecord]) -> list[bytes]:
        """`encode` of each record; their long fields (mostly nanosecond times) are encoded
        together as arrays (`avro_longs`), a third of a web-shop record's cost one by one."""
        try:
            longs = iter(avro_longs(_long_fields(records))).__next__
            return [self._encode(r, longs) for r in records]
        except (TypeError, KeyError, AttributeError, OverflowError, IndexError, ValueError):
            return [self._encode_one(r) for r in records]

    def _encode_one(self, record: TraceRecord) -> bytes:
        # A record alone (and each of a slice the array path refused): one the hand path does
        # not take goes through fastavro, which writes the same bytes or raises its own error.
        try:
            return self._encode(record, iter(avro_longs(_long_fields([record]))).__next__)
        except (TypeError, KeyError, AttributeError, OverflowError, IndexError, ValueError):
            encoded: bytes = self.codec.encode(record)
            return encoded

    def _encode(self, r: TraceRecord, long: Callable[[], bytes]) -> bytes:
        # `long()` is the next of the record's long fields, in `_long_fields` order.
        text, ident, boolean = avro_string, avro_id, avro_boolean
        span = self._spans.encode
        return b"".join(
            (
                ident(r["trace_id"]),
                long(),  # version
                text(r["completion"]),
                long(),  # start_time_unix_nano
                long(),  # end_time_unix_nano
                long(),  # duration_ns
                long(),  # span_count
                long(),  # error_count
                text(r["root_service"]),
                text(r["root_operation"]),
                avro_array([text(s) for s in r["services"]]),
                long(),  # depth
                boolean(r["clock_skew_adjusted"]),
                avro_array([ident(s) for s in r["adjusted_span_ids"]]),
                avro_array([text(w) for w in r["warnings"]]),
                avro_array(
                    [
                        b"".join(
                            (
                                ident(c["span_id"]),
                                text(c["service"]),
                                text(c["operation"]),
                                long(),
                                long(),
                                long(),
                            )
                        )
                        for c in r["critical_path"]
                    ]
                ),
                avro_array(
                    [
                        text(t["service"]) + text(t["operation"]) + long()
                        for t in r["critical_path_self_time"]
                    ]
                ),
                long(),  # dropped_span_count
                avro_array([span(s) for s in r["spans"]]),
                avro_id_array(r["span_ids"]),
                long(),  # emitted_at_unix_nano
                boolean(r["sampled"]),
                text(r["sampling_policy"]),
                long(),  # previous_span_count
                avro_array(
                    [
                        b"".join(
                            (
                                text(c["client"]),
                                text(c["server"]),
                                text(c["connection_type"]),
                                long(),
                                long(),
                                boolean(c["error"]),
                                ident(c["span_id"]),
                            )
                        )
                        for c in r["calls"]
                    ]
                ),
                avro_array(
                    [
                        ident(o["span_id"])
                        + text(o["service"])
                        + text(o["operation"])
                        + text(o["status_message"])
                        + avro_array([text(s) for s in o["propagated_to"]])
                        + boolean(o["reached_root"])
                        + long()
                        + avro_array(
                            [
                                text(h["service"]) + text(h["operation"]) + long()
                                for h in o["propagated_through"]
                            ]
                        )
                        for o in r["error_origins"]
                    ]
                ),
            )
        )


def _long_fields(records: Sequence[TraceRecord]) -> list[int]:
    """The long fields of the records, in the order TraceRecordEncoder._encode writes them."""
    out: list[int] = []
    add = out.extend
    for r in records:
        add(
            (
                r["version"],
                r["start_time_unix_nano"],
                r["end_time_unix_nano"],
                r["duration_ns"],
                r["span_count"],
                r["error_count"],
                r["depth"],
            )
        )
        for c in r["critical_path"]:
            add((c["start_time_unix_nano"], c["end_time_unix_nano"], c["self_time_ns"]))
        add([t["self_time_ns"] for t in r["critical_path_self_time"]])
        add((r["dropped_span_count"], r["emitted_at_unix_nano"], r["previous_span_count"]))
        for call in r["calls"]:
            add((call["end_time_unix_nano"], call["duration_ns"]))
        for origin in r["error_origins"]:
            add((origin["end_time_unix_nano"],))
            add([h["end_time_unix_nano"] for h in origin["propagated_through"]])
    return out


def encode_within(
    encoder: TraceRecordEncoder, records: Sequence[TraceRecord], max_bytes: int
) -> list[tuple[TraceRecord, bytes]]:
    """Each record to publish with its bytes. A record over `max_bytes` (Kafka refuses messages
    over its request size) goes without its spans, their ids in `span_ids` instead: it keeps
    every other field (summary, critical path, service-graph calls)."""
    published = list(zip(records, encoder.encode_many(records), strict=True))
    for i, (record, value) in enumerate(published):
        if len(value) > max_bytes and record["spans"]:
            slim: TraceRecord = {
                **record,
                "spans": [],
                "span_ids": [s["span_id"] for s in record["spans"]],
            }
            published[i] = (slim, encoder.encode(slim))
    return published


TRACE_BATCH_MAX_BYTES = 900_000
"""Largest trace record batch message (under the producer's 1,000,000-byte request size); a
record over it travels alone."""


def trace_batches(bodies: Sequence[bytes], max_bytes: int = TRACE_BATCH_MAX_BYTES) -> list[bytes]:
    """Encoded trace records as trace record batch values (Avro arrays) of about `max_bytes` at
    most each, in order."""
    batches: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for body in bodies:
        if current and size + len(body) > max_bytes:
            batches.append(avro_array(current))
            current, size = [], 0
        current.append(body)
        size += len(body)
    if current:
        batches.append(avro_array(current))
    return batches


class TraceRecordsCodec:
    """Reads tracepipe.traces messages: trace record batches (an Avro array of trace records,
    named by its own fingerprint) and single trace records (before batches, or other writers)."""

    def __init__(self) -> None:
        self.single = AvroCodec(TRACE_SCHEMA)
        self.batch = AvroCodec(TRACE_SCHEMA, array=True)

    def decode(self, value: bytes, fingerprint: str | None) -> list[TraceRecord]:
        """The records of one message; DecodeError when it cannot be read."""
        if self.batch.knows(fingerprint):
            records: list[TraceRecord] = self.batch.decode(value, fingerprint)
            return records
        return [self.single.decode(value, fingerprint)]
