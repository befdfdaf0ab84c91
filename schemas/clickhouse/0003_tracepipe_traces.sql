-- Assembled traces: one row per emitted trace version; the latest version wins
-- (ReplacingMergeTree on Version; read with FINAL or argMax). A re-delivered version replaces
-- itself, so a trace emitted twice at one version is stored once.
CREATE TABLE IF NOT EXISTS tracepipe_traces
(
    `TraceId` String CODEC(ZSTD(1)),
    `Version` UInt32,
    `Completion` LowCardinality(String),
    `Start` DateTime64(9) CODEC(Delta, ZSTD(1)),
    `End` DateTime64(9) CODEC(Delta, ZSTD(1)),
    `DurationNs` UInt64 CODEC(ZSTD(1)),
    `SpanCount` UInt32,
    `ErrorCount` UInt32,
    `RootService` LowCardinality(String),
    `RootOperation` LowCardinality(String),
    `Services` Array(LowCardinality(String)),
    `Depth` UInt32,
    `ClockSkewAdjusted` Bool,
    `Warnings` Array(String),
    `DroppedSpanCount` UInt64,
    `Sampled` Bool,
    `SamplingPolicy` LowCardinality(String),
    `EmittedAt` DateTime64(9),
    INDEX idx_root_service RootService TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration DurationNs TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree(Version)
ORDER BY TraceId
TTL toDateTime(Start) + toIntervalDay({ttl_days})
SETTINGS index_granularity = 8192;

-- Per trace and version, each service/operation's self time on the critical path.
CREATE TABLE IF NOT EXISTS tracepipe_critical_path
(
    `TraceId` String CODEC(ZSTD(1)),
    `Version` UInt32,
    `Start` DateTime64(9) CODEC(Delta, ZSTD(1)),
    `ServiceName` LowCardinality(String),
    `SpanName` LowCardinality(String),
    `SelfTimeNs` UInt64,
    `TraceDurationNs` UInt64
)
ENGINE = ReplacingMergeTree(Version)
ORDER BY (TraceId, ServiceName, SpanName)
TTL toDateTime(Start) + toIntervalDay({ttl_days})
SETTINGS index_granularity = 8192;
