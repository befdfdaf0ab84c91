-- Error-rate alerts carry where the service's errors originated (alert.avsc `error_origins`,
-- streams/alert/attribution.py `read_error_origins`): parallel arrays, one entry per origin
-- service/operation, most traces first; empty for other signals and for rows written before
-- this migration.
ALTER TABLE tracepipe_alerts
    ADD COLUMN IF NOT EXISTS `ErrorOriginServices` Array(LowCardinality(String)) CODEC(ZSTD(1))
    AFTER `AttributionShare`,
    ADD COLUMN IF NOT EXISTS `ErrorOriginOperations` Array(LowCardinality(String)) CODEC(ZSTD(1))
    AFTER `ErrorOriginServices`,
    ADD COLUMN IF NOT EXISTS `ErrorOriginTraces` Array(UInt32) CODEC(ZSTD(1))
    AFTER `ErrorOriginOperations`,
    ADD COLUMN IF NOT EXISTS `ErrorOriginShare` Array(Float64) CODEC(ZSTD(1))
    AFTER `ErrorOriginTraces`,
    ADD COLUMN IF NOT EXISTS `ErrorOriginPropagatedTo` Array(Array(String)) CODEC(ZSTD(1))
    AFTER `ErrorOriginShare`;
