"""Trace records to rows of tracepipe_traces, tracepipe_critical_path and
tracepipe_error_origins."""

from __future__ import annotations

from typing import Any

from streams.assemble.record import TraceRecord

TRACES = "tracepipe_traces"
TRACES_COLUMNS = (
    "TraceId",
    "Version",
    "Completion",
    "Start",
    "End",
    "DurationNs",
    "SpanCount",
    "ErrorCount",
    "ErrorOrigins",
    "RootService",
    "RootOperation",
    "Services",
    "Depth",
    "ClockSkewAdjusted",
    "Warnings",
    "DroppedSpanCount",
    "Sampled",
    "SamplingPolicy",
    "EmittedAt",
)
CRITICAL_PATH = "tracepipe_critical_path"
CRITICAL_PATH_COLUMNS = (
    "TraceId",
    "Version",
    "Start",
    "ServiceName",
    "SpanName",
    "SelfTimeNs",
    "TraceDurationNs",
)
ERROR_ORIGINS = "tracepipe_error_origins"
ERROR_ORIGINS_COLUMNS = (
    "TraceId",
    "Version",
    "Start",
    "ServiceName",
    "SpanName",
    "OriginSpans",
    "PropagatedTo",
    "ReachedRoot",
    "StatusMessage",
)


def trace_row(record: TraceRecord) -> tuple[Any, ...]:
    """One tracepipe_traces row (columns in TRACES_COLUMNS order)."""
    return (
        record["trace_id"],
        record["version"],
        record["completion"],
        record["start_time_unix_nano"],
        record["end_time_unix_nano"],
        record["duration_ns"],
        record["span_count"],
        record["error_count"],
        error_origin_pairs(record) if record["error_origins"] else [],
        record["root_service"],
        record["root_operation"],
        record["services"],
        record["depth"],
        record["clock_skew_adjusted"],
        record["warnings"],
        record["dropped_span_count"],
        record["sampled"],
        record["sampling_policy"],
        record["emitted_at_unix_nano"],
    )


def critical_path_rows(record: TraceRecord) -> list[tuple[Any, ...]]:
    """tracepipe_critical_path rows: one per service/operation on the trace's critical path."""
    return [
        (
            record["trace_id"],
            record["version"],
            record["start_time_unix_nano"],
            item["service"],
            item["operation"],
            item["self_time_ns"],
            record["duration_ns"],
        )
        for item in record["critical_path_self_time"]
    ]


def error_origin_pairs(record: TraceRecord) -> list[tuple[str, str]]:
    """The trace's error origins as (service, operation) pairs, each once, in the order of their
    first origin span (tracepipe_traces.ErrorOrigins)."""
    return list(dict.fromkeys((o["service"], o["operation"]) for o in record["error_origins"]))


def error_origin_rows(record: TraceRecord) -> list[tuple[Any, ...]]:
    """tracepipe_error_origins rows: one per service/operation where the trace's errors
    originated (its origin spans counted, their propagated-to services merged nearest first)."""
    if not record["error_origins"]:
        return []
    merged: dict[tuple[str, str], list[Any]] = {}
    for origin in record["error_origins"]:
        key = (origin["service"], origin["operation"])
        row = merged.get(key)
        if row is None:
            merged[key] = [1, dict.fromkeys(origin["propagated_to"]), origin["reached_root"],
                           origin["status_message"]]  # fmt: skip
            continue
        row[0] += 1
        row[1].update(dict.fromkeys(origin["propagated_to"]))
        row[2] = row[2] or origin["reached_root"]
    return [
        (
            record["trace_id"],
            record["version"],
            record["start_time_unix_nano"],
            service,
            operation,
            spans,
            list(propagated_to),
            reached_root,
            message,
        )
        for (service, operation), (spans, propagated_to, reached_root, message) in merged.items()
    ]
