-- otel_traces deduplicates by span identity: a span stored twice (a batch redelivered after a
-- crash or a rebalance, an insert retried after its ack was lost) is one row under FINAL.
-- Same columns, codecs, indexes, partitioning and TTL as 0001 (the Collector exporter's layout,
-- leading sort columns unchanged); the engine becomes ReplacingMergeTree and the sort key ends
-- with (TraceId, SpanId), so the copies of a span, identical in every column, collapse.
-- non_replicated_deduplication_window: an insert retried with the very same block (the
-- writer's retry) is dropped on arrival, so those copies are not stored at all.
--
-- An existing table is rebuilt in place: the new table takes the name first (writers go
-- there at once, nothing written during the copy is lost), then the old rows are copied in.
-- Every statement may run again after a failure: the `-- only if:` query decides whether a
-- step is still to do (see streams/warehouse/migrate.py), and a repeated copy collapses.
-- On a server, dropping the old table needs it under max_table_size_to_drop (50 GB default).
CREATE TABLE IF NOT EXISTS otel_traces_by_span
(
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested
    (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested
    (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), TraceId, SpanId)
TTL toDateTime(Timestamp) + toIntervalDay({ttl_days})
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1,
    non_replicated_deduplication_window = 1000;

-- only if: SELECT engine = 'MergeTree' FROM system.tables WHERE database = currentDatabase() AND name = 'otel_traces'
EXCHANGE TABLES otel_traces AND otel_traces_by_span;

-- The lookup view is made again on the table now named otel_traces: engines differ on whether
-- a view follows its source through EXCHANGE (chDB 26 follows the name, some servers the table).
DROP VIEW IF EXISTS otel_traces_trace_id_ts_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS otel_traces_trace_id_ts_mv
TO otel_traces_trace_id_ts
AS SELECT
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp) AS End
FROM otel_traces
WHERE TraceId != ''
GROUP BY TraceId;

-- The copy goes through the view too: the lookup gets its rows again, harmless (readers take
-- min(Start) and max(End) per trace).
-- only if: SELECT engine = 'MergeTree' FROM system.tables WHERE database = currentDatabase() AND name = 'otel_traces_by_span'
INSERT INTO otel_traces SELECT * FROM otel_traces_by_span;

-- After the copy (or on a run again after the drop, an empty table made by the first statement).
-- only if: SELECT engine = 'ReplacingMergeTree' FROM system.tables WHERE database = currentDatabase() AND name = 'otel_traces'
DROP TABLE IF EXISTS otel_traces_by_span;
