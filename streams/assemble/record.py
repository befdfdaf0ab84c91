"""The assembled-trace record (schemas/avro/trace.avsc) built from a trace's spans: one
structure analysis gives its shape, clock-skew adjustment, critical path, service-graph calls
and error origins."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TypedDict

from streams.assemble.critical_path import (
    CriticalPathSegment,
    CriticalPathSelfTime,
    compute_critical_path,
)
from streams.assemble.error_origins import ErrorOrigin, error_origins
from streams.assemble.graph import edges_from_trace
from streams.assemble.skew import adjust_clock_skew
from streams.assemble.structure import TraceStructure, analyze_structure
from streams.errors import SchemaError
from streams.model.codec import AvroCodec
from streams.model.span import (
    NAME,
    SERVICE_NAME,
    SPAN_ID,
    STATUS_CODE,
    TRACE_ID,
    Span,
    SpanRow,
    span_from_row,
    span_rows,
)
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

TRACE_SCHEMA = "trace"
"""The AvroCodec name of the record built here."""

COMPLETIONS = ("complete", "idle_no_root", "max_age", "evicted")
"""Why a trace was emitted: root present and idle, idle without a root, max age, evicted."""


class ServiceGraphCall(TypedDict):
    """One call along a service-graph edge (streams.assemble.graph.EdgeObservation, without the
    trace id: the record has it)."""

    client: str
    server: str
    connection_type: str
    end_time_unix_nano: int
    duration_ns: int
    error: bool
    span_id: str


class TraceRecord(TypedDict):
    """One assembled trace, as schemas/avro/trace.avsc encodes it."""

    trace_id: str
    version: int
    completion: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    duration_ns: int
    span_count: int
    error_count: int
    root_service: str
    root_operation: str
    services: list[str]
    depth: int
    clock_skew_adjusted: bool
    adjusted_span_ids: list[str]
    warnings: list[str]
    critical_path: list[CriticalPathSegment]
    critical_path_self_time: list[CriticalPathSelfTime]
    dropped_span_count: int
    spans: list[Span]
    span_ids: list[str]
    emitted_at_unix_nano: int
    sampled: bool
    sampling_policy: str
    previous_span_count: int
    calls: list[ServiceGraphCall]
    error_origins: list[ErrorOrigin]


def build_trace_record(
    spans: Sequence[Span] | Sequence[SpanRow],
    *,
    version: int,
    completion: str,
    emitted_at_unix_nano: int,
    include_spans: bool = True,
    dropped_span_count: int = 0,
    previous_span_count: int = 0,
) -> TraceRecord:
    """Analyse a trace's spans (structure, clock skew, critical path, the service-graph calls
    completed by spans[previous_span_count:], error origins) into its trace record; with
    `include_spans` it carries the spans, else their ids.

    Times in the record (bounds, critical path) are skew-adjusted; `spans` and `calls` keep them
    as reported.
    """
    if completion not in COMPLETIONS:
        raise ValueError(f"completion {completion!r} is not one of {', '.join(COMPLETIONS)}")
    spans = span_rows(spans)
    structure = analyze_structure(spans)
    adjustment = adjust_clock_skew(structure)
    path = compute_critical_path(structure, adjustment)
    unique = structure.spans
    if unique:
        start_ns = min(adjustment.start_ns)
        end_ns = max(adjustment.end_ns)
    else:
        start_ns = end_ns = 0
    root = unique[structure.root] if structure.root >= 0 else None
    error_count = sum(1 for s in spans if s[STATUS_CODE] == "ERROR")
    return {
        "trace_id": unique[0][TRACE_ID] if unique else "",
        "version": version,
        "completion": completion,
        "start_time_unix_nano": start_ns,
        "end_time_unix_nano": end_ns,
        "duration_ns": end_ns - start_ns,
        "span_count": len(spans),
        "error_count": error_count,
        "root_service": root[SERVICE_NAME] if root is not None else "",
        "root_operation": root[NAME] if root is not None else "",
        "services": sorted({s[SERVICE_NAME] for s in unique}),
        "depth": structure.depth,
        "clock_skew_adjusted": adjustment.adjusted,
        "adjusted_span_ids": adjustment.adjusted_span_ids,
        "warnings": structure.warnings,
        "critical_path": path.segments,
        "critical_path_self_time": path.self_time,
        "dropped_span_count": dropped_span_count,
        "spans": [span_from_row(s) for s in spans] if include_spans else [],
        "span_ids": [] if include_spans else [s[SPAN_ID] for s in spans],
        "emitted_at_unix_nano": emitted_at_unix_nano,
        # Tail sampling decides later, on the finished record; until then everything is kept.
        "sampled": True,
        "sampling_policy": "sampling_off",
        "previous_span_count": previous_span_count,
        "calls": service_graph_calls(spans, previous_span_count, structure),
        # Most traces have no error: skip the analysis for them.
        "error_origins": error_origins(structure) if error_count else [],
    }


def service_graph_calls(
    spans: Sequence[Span] | Sequence[SpanRow],
    new_from: int = 0,
    structure: TraceStructure | None = None,
) -> list[ServiceGraphCall]:
    """The service-graph calls completed by spans[new_from:] (streams.assemble.graph), as a
    record carries them; `structure` is `analyze_structure(spans)` when the caller has it."""
    # Unpacked, not read by attribute: a NamedTuple's attributes are descriptors, ~7x slower.
    return [
        {
            "client": client,
            "server": server,
            "connection_type": connection_type,
            "end_time_unix_nano": end_time_unix_nano,
            "duration_ns": duration_ns,
            "error": error,
            "span_id": span_id,
        }
        for (
            client,
            server,
            connection_type,
            end_time_unix_nano,
            duration_ns,
            error,
            _,
            span_id,
        ) in edges_from_trace(spans, new_from, structure)
    ]


def record_span_ids(record: TraceRecord) -> list[str]:
    """The ids of a record's spans, whether it carries the spans or only their ids."""
    return [s["span_id"] for s in record["spans"]] if record["spans"] else record["span_ids"]


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
"""Largest trace record batch message (under the producer's 1 MiB request size); a record over
it travels alone."""


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
