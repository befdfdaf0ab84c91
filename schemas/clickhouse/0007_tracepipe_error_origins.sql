-- Error origins (streams/assemble/error_origins.py): where each assembled trace's errors
-- originated and how far up they propagated, written at emission from the trace records in
-- hand, as the critical path is.
--
-- tracepipe_traces gains the trace's origins as (service, operation) pairs, each once, in the
-- order of their first origin span; empty for a trace without errors and for rows written
-- before this migration.
ALTER TABLE tracepipe_traces
    ADD COLUMN IF NOT EXISTS `ErrorOrigins` Array(Tuple(service String, operation String))
    AFTER `ErrorCount`;

-- Per trace and version, each service/operation where an error originated: how many of its
-- spans were origins, the services the errors propagated to (nearest first, each once, over
-- those spans), whether one reached the root span, and the first origin's status message.
-- Read a trace's latest version (a re-emitted trace can have other origins): the rows whose
-- Version is the trace's greatest.
CREATE TABLE IF NOT EXISTS tracepipe_error_origins
(
    `TraceId` String CODEC(ZSTD(1)),
    `Version` UInt32,
    `Start` DateTime64(9) CODEC(Delta, ZSTD(1)),
    `ServiceName` LowCardinality(String),
    `SpanName` LowCardinality(String),
    `OriginSpans` UInt32,
    `PropagatedTo` Array(LowCardinality(String)),
    `ReachedRoot` Bool,
    `StatusMessage` String CODEC(ZSTD(1)),
    INDEX idx_propagated_to PropagatedTo TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(Version)
ORDER BY (TraceId, ServiceName, SpanName)
TTL toDateTime(Start) + toIntervalDay({ttl_days})
SETTINGS index_granularity = 8192;
