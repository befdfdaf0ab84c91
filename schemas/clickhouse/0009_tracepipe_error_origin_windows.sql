-- Final error-origin windows (tracepipe.origins, schemas/avro/origin.avsc): per window (the
-- latency windows: epoch-aligned, on the end time of the error spans) and per service/operation
-- where errors were seen, how many traces erred there (OriginService = OriginOperation = '')
-- and, per origin service/operation, how many of those traces' errors originated there (a trace
-- with two origins counts in both rows). Where errors were seen: an origin span and every error
-- ancestor its error propagated through (streams/assemble/error_origins.py). The diagonal
-- (ServiceName, SpanName) = (OriginService, OriginOperation) counts the traces whose errors
-- originated at that operation. A trace counts once per window and row. ExampleTraceIds: a few
-- of those traces. Same engine and redelivery rule as tracepipe_edges: read with FINAL.
CREATE TABLE IF NOT EXISTS tracepipe_error_origin_windows
(
    `WindowStart` DateTime64(9) CODEC(Delta, ZSTD(1)),
    `WindowEnd` DateTime64(9) CODEC(Delta, ZSTD(1)),
    `ServiceName` LowCardinality(String) CODEC(ZSTD(1)),
    `SpanName` LowCardinality(String) CODEC(ZSTD(1)),
    `OriginService` LowCardinality(String) CODEC(ZSTD(1)),
    `OriginOperation` LowCardinality(String) CODEC(ZSTD(1)),
    `Traces` UInt64 CODEC(ZSTD(1)),
    `ExampleTraceIds` Array(String) CODEC(ZSTD(1)),
    `EmittedAt` DateTime64(9) CODEC(Delta, ZSTD(1))
)
ENGINE = ReplacingMergeTree(EmittedAt)
PARTITION BY toDate(WindowStart)
ORDER BY (ServiceName, SpanName, OriginService, OriginOperation, WindowStart)
TTL toDateTime(WindowStart) + toIntervalDay({ttl_days})
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;
