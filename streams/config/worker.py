"""Settings of the Faust worker process: app id, web server, consumer."""

from __future__ import annotations

from dataclasses import dataclass

from streams.config.setting import path_setting, positive, setting
from streams.errors import ConfigError
from streams.paths import IN_HOME

MIN_SESSION_TIMEOUT_MS = 6_000
MAX_SESSION_TIMEOUT_MS = 90_000


@dataclass(frozen=True)
class WorkerConfig:
    """The Faust worker: its app id (the consumer group and changelog prefix) and web server."""

    app_id: str = setting(
        "tracepipe", "Faust app id: the consumer group and changelog prefix; keep it stable"
    )
    web_host: str = setting(
        "127.0.0.1",
        "address the worker web server binds (/ui/ web view, /metrics, /api/*); no "
        "authentication: keep it on loopback (docs/ARCHITECTURE.md, Security)",
    )
    web_port: int = setting(6066, "worker web server port")
    data_dir: str = path_setting(f"{IN_HOME}/worker", "Faust data dir (table state)")
    log_level: str = setting("info", "worker log level")
    # Faust's default is 4096; at up to 512 KiB per span batch that could be 2 GiB read ahead
    # by a stalled span sink. 256 is still tens of seconds of input at the benchmarked rates.
    stream_buffer_maxsize: int = setting(
        256, "messages each agent's stream buffers before its partitions are paused (Faust)"
    )
    consumer_max_fetch_bytes: int = setting(
        1_048_576, "most bytes fetched per partition and request (a larger record still comes)"
    )
    # Faust's default is 60 s: a worker restarted after SIGKILL waited that long for the broker
    # to give up on its dead predecessor before the group rebalanced (measured ~60 s recovery).
    # Heartbeats come from the event loop, so a loop blocked longer than this minus a heartbeat
    # interval gets a live worker evicted (its batches are redelivered, never lost).
    session_timeout_ms: int = setting(
        10_000,
        "consumer group session timeout: how long the broker waits for a silent worker "
        "before handing its partitions on (heartbeats every third of it, at most 3 s)",
    )

    @property
    def heartbeat_interval_ms(self) -> int:
        """Consumer heartbeats: a third of the session timeout (Kafka's advice), 3 s at most."""
        return min(3_000, self.session_timeout_ms // 3)

    def validate(self) -> None:
        """Raise ConfigError naming the first bad key."""
        if (
            not self.app_id
            or not self.app_id.replace("-", "").replace("_", "").replace(".", "").isalnum()
        ):
            raise ConfigError(
                f"invalid worker.app_id: {self.app_id!r}; should be letters, digits, '-', '_' "
                "or '.', and stable: it names the consumer group (set TRACEPIPE_WORKER_APP_ID)"
            )
        if not 0 < self.web_port < 65536:
            raise ConfigError(
                f"invalid worker.web_port: {self.web_port}; should be 1-65535 "
                "(set TRACEPIPE_WORKER_WEB_PORT)"
            )
        positive("worker", "stream_buffer_maxsize", self.stream_buffer_maxsize)
        positive("worker", "consumer_max_fetch_bytes", self.consumer_max_fetch_bytes)
        if not MIN_SESSION_TIMEOUT_MS <= self.session_timeout_ms <= MAX_SESSION_TIMEOUT_MS:
            raise ConfigError(
                f"invalid worker.session_timeout_ms: {self.session_timeout_ms}; should be from "
                f"{MIN_SESSION_TIMEOUT_MS} (the broker's default group.min.session.timeout.ms) "
                f"to {MAX_SESSION_TIMEOUT_MS} (Faust's request timeout) "
                "(set TRACEPIPE_WORKER_SESSION_TIMEOUT_MS)"
            )
