"""Settings of ClickHouse: which engine or server the sinks and queries use."""

from __future__ import annotations

from dataclasses import dataclass

from streams.config.setting import path_setting, positive, setting
from streams.errors import ConfigError
from streams.paths import IN_HOME

MAX_TTL_DAYS = 10_000
CHDB_SCHEME = "chdb://"
DEFAULT_CHDB_URL = f"{CHDB_SCHEME}{IN_HOME}/chdb"


@dataclass(frozen=True)
class ClickHouseConfig:
    """Which ClickHouse to use: `chdb://PATH` (embedded) or `clickhouse://host:9000/db`."""

    url: str = setting(
        DEFAULT_CHDB_URL, "chdb://PATH (embedded) or clickhouse://[user[:pw]@]host:9000/db"
    )
    ttl_days: int = setting(30, "TTL of every table, days")
    connect_timeout_s: float = setting(10.0, "server backend connect timeout")
    fault_file: str = path_setting(
        "", "fault injection (tests): every insert fails while this file exists (empty: off)"
    )

    def validate(self) -> None:
        """Raise ConfigError naming the first bad key."""
        if not self.url.startswith(("chdb://", "clickhouse://")):
            raise ConfigError(
                f"invalid clickhouse.url: {self.url!r}; should start with chdb:// (embedded) "
                "or clickhouse:// (server, native protocol) (set TRACEPIPE_CLICKHOUSE_URL)"
            )
        positive("clickhouse", "ttl_days", self.ttl_days)
        if self.ttl_days > MAX_TTL_DAYS:
            # TTL expressions use DateTime, which ends in 2106: a longer TTL wraps and expires
            # every row at insert.
            raise ConfigError(
                f"invalid clickhouse.ttl_days: {self.ttl_days}; should be at most {MAX_TTL_DAYS} "
                "(set TRACEPIPE_CLICKHOUSE_TTL_DAYS)"
            )
        positive("clickhouse", "connect_timeout_s", self.connect_timeout_s)
