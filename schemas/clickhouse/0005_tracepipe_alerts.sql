-- Alert transitions (tracepipe.alerts, schemas/avro/alert.avsc): one row per event, every state
-- (pending, firing, resolved, cancelled) of every incident. Value, Threshold and Baseline are in
-- the unit of Signal: ns for p50..p99, a share (0..1) for error_rate, calls/s for throughput.
-- EndsAt is 1970-01-01 (0) while pending or firing. Attribution* are parallel arrays, one
-- element per service/operation, largest critical-path self-time increase first (ns, share of
-- the total increase 0..1). EmittedAt is when the alert stage published the event (the window
-- end for records without it).
-- ReplacingMergeTree(EmittedAt) keyed by (Fingerprint, Sequence): an event stored twice (a
-- redelivered message) is one row after merges; read with FINAL.
CREATE TABLE IF NOT EXISTS tracepipe_alerts
(
    `Fingerprint` String CODEC(ZSTD(1)),
    `Sequence` UInt32 CODEC(ZSTD(1)),
    `Rule` LowCardinality(String) CODEC(ZSTD(1)),
    `RuleType` LowCardinality(String) CODEC(ZSTD(1)),
    `State` LowCardinality(String) CODEC(ZSTD(1)),
    `Severity` LowCardinality(String) CODEC(ZSTD(1)),
    `Labels` Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    `ServiceName` LowCardinality(String) CODEC(ZSTD(1)),
    `SpanName` LowCardinality(String) CODEC(ZSTD(1)),
    `Signal` LowCardinality(String) CODEC(ZSTD(1)),
    `Condition` LowCardinality(String) CODEC(ZSTD(1)),
    `Value` Float64 CODEC(ZSTD(1)),
    `Threshold` Float64 CODEC(ZSTD(1)),
    `Baseline` Float64 CODEC(ZSTD(1)),
    `WindowStart` DateTime64(9) CODEC(Delta, ZSTD(1)),
    `WindowEnd` DateTime64(9) CODEC(Delta, ZSTD(1)),
    `StartsAt` DateTime64(9) CODEC(Delta, ZSTD(1)),
    `EndsAt` DateTime64(9) CODEC(Delta, ZSTD(1)),
    `ExemplarTraceIds` Array(String) CODEC(ZSTD(1)),
    `AttributionServices` Array(LowCardinality(String)) CODEC(ZSTD(1)),
    `AttributionOperations` Array(LowCardinality(String)) CODEC(ZSTD(1)),
    `AttributionBaselineSelfTimeNs` Array(Float64) CODEC(ZSTD(1)),
    `AttributionCurrentSelfTimeNs` Array(Float64) CODEC(ZSTD(1)),
    `AttributionIncreaseNs` Array(Float64) CODEC(ZSTD(1)),
    `AttributionShare` Array(Float64) CODEC(ZSTD(1)),
    `EmittedAt` DateTime64(9) CODEC(Delta, ZSTD(1)),
    INDEX idx_emitted_at EmittedAt TYPE minmax GRANULARITY 1,
    INDEX idx_service ServiceName TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(EmittedAt)
ORDER BY (Fingerprint, Sequence)
TTL toDateTime(EmittedAt) + toIntervalDay({ttl_days})
SETTINGS index_granularity = 8192;
