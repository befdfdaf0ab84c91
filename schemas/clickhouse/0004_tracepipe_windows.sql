-- Final latency windows (tracepipe.latency, schemas/avro/latency.avsc): one row per service,
-- operation, span kind, status class and window. SpanKind holds the otel_traces values
-- (`Server`, `Client`, ...: streams.warehouse.SPAN_KIND_VALUES), so the two tables join on
-- (ServiceName, SpanName, SpanKind). StatusClass is `ok` (status OK or UNSET) or `error`.
-- Durations and percentiles are in ns. Sketch* are the window's DDSketch bins (ddsketch's
-- LogarithmicMapping keys and their counts): sumMap(SketchKeys, SketchCounts) over any rows
-- of one relative accuracy is the sketch of all their spans, so percentiles over a longer
-- range come from merged bins, never from averaging P99. Exemplar* are the slowest spans,
-- slowest first.
-- ReplacingMergeTree(EmittedAt): a window stored twice (a redelivered message) is one row after
-- merges, the latest emission winning; read with FINAL.
CREATE TABLE IF NOT EXISTS tracepipe_latency
(
    `WindowStart` DateTime64(9) CODEC(Delta, ZSTD(1)),
    `WindowEnd` DateTime64(9) CODEC(Delta, ZSTD(1)),
    `ServiceName` LowCardinality(String) CODEC(ZSTD(1)),
    `SpanName` LowCardinality(String) CODEC(ZSTD(1)),
    `SpanKind` LowCardinality(String) CODEC(ZSTD(1)),
    `StatusClass` LowCardinality(String) CODEC(ZSTD(1)),
    `Count` UInt64 CODEC(ZSTD(1)),
    `Errors` UInt64 CODEC(ZSTD(1)),
    `ErrorRate` Float64 CODEC(ZSTD(1)),
    `Throughput` Float64 CODEC(ZSTD(1)),
    `DurationSum` UInt64 CODEC(ZSTD(1)),
    `DurationMin` UInt64 CODEC(ZSTD(1)),
    `DurationMax` UInt64 CODEC(ZSTD(1)),
    `P50` Float64 CODEC(ZSTD(1)),
    `P90` Float64 CODEC(ZSTD(1)),
    `P95` Float64 CODEC(ZSTD(1)),
    `P99` Float64 CODEC(ZSTD(1)),
    `SketchRelativeAccuracy` Float64 CODEC(ZSTD(1)),
    `SketchZeroCount` Float64 CODEC(ZSTD(1)),
    `SketchKeys` Array(Int32) CODEC(ZSTD(1)),
    `SketchCounts` Array(Float64) CODEC(ZSTD(1)),
    `ExemplarTraceIds` Array(String) CODEC(ZSTD(1)),
    `ExemplarSpanIds` Array(String) CODEC(ZSTD(1)),
    `ExemplarDurations` Array(UInt64) CODEC(ZSTD(1)),
    `EmittedAt` DateTime64(9) CODEC(Delta, ZSTD(1))
)
ENGINE = ReplacingMergeTree(EmittedAt)
PARTITION BY toDate(WindowStart)
ORDER BY (ServiceName, SpanName, SpanKind, StatusClass, WindowStart)
TTL toDateTime(WindowStart) + toIntervalDay({ttl_days})
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

-- Final service-graph edge windows (tracepipe.edges, schemas/avro/edge.avsc): one row per
-- client, server, connection type and window. ConnectionType is '' (request/response),
-- `messaging_system`, `database` or `virtual_node`. Columns after ConnectionType mean what they
-- mean in tracepipe_latency; same engine, same redelivery rule.
CREATE TABLE IF NOT EXISTS tracepipe_edges
(
    `WindowStart` DateTime64(9) CODEC(Delta, ZSTD(1)),
    `WindowEnd` DateTime64(9) CODEC(Delta, ZSTD(1)),
    `Client` LowCardinality(String) CODEC(ZSTD(1)),
    `Server` LowCardinality(String) CODEC(ZSTD(1)),
    `ConnectionType` LowCardinality(String) CODEC(ZSTD(1)),
    `Count` UInt64 CODEC(ZSTD(1)),
    `Errors` UInt64 CODEC(ZSTD(1)),
    `ErrorRate` Float64 CODEC(ZSTD(1)),
    `Throughput` Float64 CODEC(ZSTD(1)),
    `DurationSum` UInt64 CODEC(ZSTD(1)),
    `DurationMin` UInt64 CODEC(ZSTD(1)),
    `DurationMax` UInt64 CODEC(ZSTD(1)),
    `P50` Float64 CODEC(ZSTD(1)),
    `P90` Float64 CODEC(ZSTD(1)),
    `P95` Float64 CODEC(ZSTD(1)),
    `P99` Float64 CODEC(ZSTD(1)),
    `SketchRelativeAccuracy` Float64 CODEC(ZSTD(1)),
    `SketchZeroCount` Float64 CODEC(ZSTD(1)),
    `SketchKeys` Array(Int32) CODEC(ZSTD(1)),
    `SketchCounts` Array(Float64) CODEC(ZSTD(1)),
    `ExemplarTraceIds` Array(String) CODEC(ZSTD(1)),
    `ExemplarSpanIds` Array(String) CODEC(ZSTD(1)),
    `ExemplarDurations` Array(UInt64) CODEC(ZSTD(1)),
    `EmittedAt` DateTime64(9) CODEC(Delta, ZSTD(1))
)
ENGINE = ReplacingMergeTree(EmittedAt)
PARTITION BY toDate(WindowStart)
ORDER BY (Client, Server, ConnectionType, WindowStart)
TTL toDateTime(WindowStart) + toIntervalDay({ttl_days})
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;
