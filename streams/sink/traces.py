"""Trace records to rows of tracepipe_traces and tracepipe_critical_path."""

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
