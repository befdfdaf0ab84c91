"""Final window records to rows of tracepipe_latency, tracepipe_edges and
tracepipe_error_origin_windows."""

from __future__ import annotations

from typing import Any

from streams.aggregate.records import (
    EdgeWindowRecord,
    LatencyWindowRecord,
    OriginWindowRecord,
    WindowStatsRecord,
)
from streams.warehouse import SPAN_KIND_VALUES

# The columns after the dimensions, the same in both tables (window_stats() fills them).
_STATS_COLUMNS = (
    "Count",
    "Errors",
    "ErrorRate",
    "Throughput",
    "DurationSum",
    "DurationMin",
    "DurationMax",
    "P50",
    "P90",
    "P95",
    "P99",
    "SketchRelativeAccuracy",
    "SketchZeroCount",
    "SketchKeys",
    "SketchCounts",
    "ExemplarTraceIds",
    "ExemplarSpanIds",
    "ExemplarDurations",
    "EmittedAt",
)
LATENCY = "tracepipe_latency"
LATENCY_COLUMNS = (
    "WindowStart",
    "WindowEnd",
    "ServiceName",
    "SpanName",
    "SpanKind",
    "StatusClass",
    *_STATS_COLUMNS,
)
EDGES = "tracepipe_edges"
EDGES_COLUMNS = (
    "WindowStart",
    "WindowEnd",
    "Client",
    "Server",
    "ConnectionType",
    *_STATS_COLUMNS,
)
ERROR_ORIGIN_WINDOWS = "tracepipe_error_origin_windows"
ERROR_ORIGIN_WINDOWS_COLUMNS = (
    "WindowStart",
    "WindowEnd",
    "ServiceName",
    "SpanName",
    "OriginService",
    "OriginOperation",
    "Traces",
    "ExampleTraceIds",
    "EmittedAt",
)


def window_stats(record: WindowStatsRecord) -> tuple[Any, ...]:
    """The values of the columns both tables share, from Count to EmittedAt."""
    sketch = record["sketch"]
    exemplars = record["exemplars"]
    return (
        record["count"],
        record["errors"],
        record["error_rate"],
        record["throughput_per_s"],
        record["sum_ns"],
        record["min_ns"],
        record["max_ns"],
        record["p50_ns"],
        record["p90_ns"],
        record["p95_ns"],
        record["p99_ns"],
        sketch["relative_accuracy"],
        sketch["zero_count"],
        sketch["keys"],
        sketch["counts"],
        [e["trace_id"] for e in exemplars],
        [e["span_id"] for e in exemplars],
        [e["duration_ns"] for e in exemplars],
        record["emitted_at_unix_nano"],
    )


def latency_row(record: LatencyWindowRecord) -> tuple[Any, ...]:
    """One tracepipe_latency row (columns in LATENCY_COLUMNS order); SpanKind as otel_traces."""
    return (
        record["window_start_unix_nano"],
        record["window_end_unix_nano"],
        record["service"],
        record["operation"],
        SPAN_KIND_VALUES.get(record["kind"], record["kind"]),
        record["status_class"],
        *window_stats(record),
    )


def edge_row(record: EdgeWindowRecord) -> tuple[Any, ...]:
    """One tracepipe_edges row (columns in EDGES_COLUMNS order)."""
    return (
        record["window_start_unix_nano"],
        record["window_end_unix_nano"],
        record["client"],
        record["server"],
        record["connection_type"],
        *window_stats(record),
    )


def origin_window_row(record: OriginWindowRecord) -> tuple[Any, ...]:
    """One tracepipe_error_origin_windows row (columns in ERROR_ORIGIN_WINDOWS_COLUMNS order):
    the window's count of traces and its exemplars' trace ids (its durations are all 0)."""
    return (
        record["window_start_unix_nano"],
        record["window_end_unix_nano"],
        record["service"],
        record["operation"],
        record["origin_service"],
        record["origin_operation"],
        record["count"],
        [e["trace_id"] for e in record["exemplars"]],
        record["emitted_at_unix_nano"],
    )
