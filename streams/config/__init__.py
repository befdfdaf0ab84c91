"""Settings: one frozen, typed object per stage, read from defaults < config file < environment.

Environment variables are `TRACEPIPE_<SECTION>_<KEY>` (for example `TRACEPIPE_KAFKA_BOOTSTRAP`);
the optional file (TOML or YAML) is named by `--config` or `TRACEPIPE_CONFIG` and has one
table per section (`[kafka]`, `[clickhouse]`, ...). Path settings come out absolute
(`streams.paths.resolve_path`): the defaults under the data home (`TRACEPIPE_HOME`), a relative
path given by the user against the current directory at load time.

The stage configs live in one module per stage (`streams.config.assembly`, ...); this package
is the one place they are imported from: `from streams.config import AssemblyConfig`.
"""

from streams.config.aggregation import AggregationConfig
from streams.config.alert import AlertConfig
from streams.config.assembly import AssemblyConfig, SamplingConfig
from streams.config.broker import KafkaConfig, LocalKafkaConfig
from streams.config.clickhouse import DEFAULT_CHDB_URL, ClickHouseConfig
from streams.config.ingest import IngestConfig
from streams.config.settings import HOME_KEY, Settings, load_settings, settings_table
from streams.config.sink import SpanSinkConfig
from streams.config.worker import WorkerConfig

__all__ = [
    "DEFAULT_CHDB_URL",
    "HOME_KEY",
    "AggregationConfig",
    "AlertConfig",
    "AssemblyConfig",
    "ClickHouseConfig",
    "IngestConfig",
    "KafkaConfig",
    "LocalKafkaConfig",
    "SamplingConfig",
    "Settings",
    "SpanSinkConfig",
    "WorkerConfig",
    "load_settings",
    "settings_table",
]
