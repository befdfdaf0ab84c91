"""The aggregation stage's output records, as fastavro decodes them: a final latency window
(schemas/avro/latency.avsc), a final service-graph edge window (schemas/avro/edge.avsc) and a
final error-origin window (schemas/avro/origin.avsc).

All carry the same statistics; only their dimensions differ."""

from __future__ import annotations

from typing import TypedDict

from streams.aggregate.sketch import SketchRecord


class ExemplarRecord(TypedDict):
    """One of a window's slowest calls: the span to open when a percentile looks wrong."""

    trace_id: str
    span_id: str
    duration_ns: int


class WindowStatsRecord(TypedDict):
    """The fields every final window has: bounds, RED numbers, sketch, exemplars."""

    window_start_unix_nano: int
    window_end_unix_nano: int
    count: int
    errors: int
    error_rate: float
    throughput_per_s: float
    sum_ns: int
    min_ns: int
    max_ns: int
    p50_ns: float
    p90_ns: float
    p95_ns: float
    p99_ns: float
    sketch: SketchRecord
    exemplars: list[ExemplarRecord]
    emitted_at_unix_nano: int


class LatencyWindowRecord(WindowStatsRecord):
    """One final latency window of a service, operation, span kind and status class."""

    service: str
    operation: str
    kind: str
    status_class: str


class EdgeWindowRecord(WindowStatsRecord):
    """One final window of a service-graph edge: calls from `client` to `server`."""

    client: str
    server: str
    connection_type: str


class OriginWindowRecord(WindowStatsRecord):
    """One final error-origin window: `count` traces erred at `service`/`operation` with an
    error that originated at `origin_service`/`origin_operation` (both "" in the row counting
    every error trace there). Its durations are all 0: it counts traces."""

    service: str
    operation: str
    origin_service: str
    origin_operation: str
