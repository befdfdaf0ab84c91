"""The assembled-trace record (schemas/avro/trace.avsc) built from a trace's spans: one
structure analysis gives its shape, clock-skew adjustment, critical path, service-graph calls
and error origins. Its bytes on tracepipe.traces: streams.assemble.record_codec."""

from __future__ import annotations

from collections.abc import Sequence
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
