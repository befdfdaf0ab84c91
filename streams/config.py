"""Settings: one frozen, typed object per stage, read from defaults < config file < environment.

Environment variables are `TRACEPIPE_<SECTION>_<KEY>` (for example `TRACEPIPE_KAFKA_BOOTSTRAP`);
the optional file (TOML or YAML) is named by `--config` or `TRACEPIPE_CONFIG` and has one
table per section (`[kafka]`, `[clickhouse]`, ...). Path settings come out absolute
(`streams.paths.resolve_path`): the defaults under the data home (`TRACEPIPE_HOME`), a relative
path given by the user against the current directory at load time.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from streams.errors import ConfigError
from streams.paths import HOME_DEFAULT, HOME_VARIABLE, IN_HOME, resolve_path

ENV_PREFIX = "TRACEPIPE_"
MAX_TTL_DAYS = 10_000
CHDB_SCHEME = "chdb://"
DEFAULT_CHDB_URL = f"{CHDB_SCHEME}{IN_HOME}/chdb"


def setting(default: Any, doc: str) -> Any:
    """A settings field with its one-line documentation (shown by `tracepipe config`)."""
    return field(default=default, metadata={"doc": doc})


def path_setting(default: str, doc: str) -> Any:
    """A settings field holding a file system path, made absolute by `load_settings`."""
    return field(default=default, metadata={"doc": doc, "path": True})


def _positive(section: str, key: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(
            f"invalid {section}.{key}: {value!r}; should be positive "
            f"(set {ENV_PREFIX}{section.upper()}_{key.upper()})"
        )


@dataclass(frozen=True)
class KafkaConfig:
    """How to reach Kafka and how the project's topics are named and sized."""

    bootstrap: str = setting("127.0.0.1:9092", "Kafka bootstrap servers, host:port[,host:port]")
    topic_prefix: str = setting("tracepipe.", "prefix of every tracepipe topic name")
    partitions: int = setting(
        6, "partitions of topics tracepipe creates (keep equal: co-partitioning)"
    )
    replication_factor: int = setting(1, "replication factor of topics tracepipe creates")
    topic_retention_ms: int = setting(
        7 * 24 * 3600 * 1000, "retention.ms of topics tracepipe creates"
    )

    def validate(self) -> None:
        """Raise ConfigError naming the first bad key."""
        if not self.bootstrap.strip():
            raise ConfigError(
                "invalid kafka.bootstrap: empty; should be host:port[,host:port] "
                "(set TRACEPIPE_KAFKA_BOOTSTRAP)"
            )
        _positive("kafka", "partitions", self.partitions)
        _positive("kafka", "replication_factor", self.replication_factor)
        _positive("kafka", "topic_retention_ms", self.topic_retention_ms)


@dataclass(frozen=True)
class LocalKafkaConfig:
    """The single-node KRaft broker `tracepipe kafka up` resolves from Maven Central and runs."""

    version: str = setting("3.9.1", "Apache Kafka version resolved from Maven Central")
    scala_version: str = setting("2.13", "Scala build of the kafka artifact (kafka_<scala>)")
    host: str = setting("127.0.0.1", "address the local broker listens on")
    port: int = setting(9092, "port of the local broker's client listener")
    controller_port: int = setting(0, "KRaft controller port (0: port + 1)")
    cache_dir: str = path_setting(
        "~/.cache/tracepipe/kafka", "where the resolved classpath is cached"
    )
    data_dir: str = path_setting(f"{IN_HOME}/kafka", "local broker log dirs, pid and log file")
    heap_mb: int = setting(512, "JVM heap of the local broker, MiB")
    start_timeout_s: float = setting(120.0, "how long `kafka up` waits for the broker to answer")

    def validate(self) -> None:
        """Raise ConfigError naming the first bad key."""
        if not 0 < self.port < 65536:
            raise ConfigError(
                f"invalid local_kafka.port: {self.port}; should be 1-65535 "
                "(set TRACEPIPE_LOCAL_KAFKA_PORT)"
            )
        _positive("local_kafka", "heap_mb", self.heap_mb)
        _positive("local_kafka", "start_timeout_s", self.start_timeout_s)


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
        _positive("clickhouse", "ttl_days", self.ttl_days)
        if self.ttl_days > MAX_TTL_DAYS:
            # TTL expressions use DateTime, which ends in 2106: a longer TTL wraps and expires
            # every row at insert.
            raise ConfigError(
                f"invalid clickhouse.ttl_days: {self.ttl_days}; should be at most {MAX_TTL_DAYS} "
                "(set TRACEPIPE_CLICKHOUSE_TTL_DAYS)"
            )
        _positive("clickhouse", "connect_timeout_s", self.connect_timeout_s)


@dataclass(frozen=True)
class SpanSinkConfig:
    """Batching and retry of the span sink (tracepipe.spans -> otel_traces)."""

    batch_max_spans: int = setting(20_000, "most spans per otel_traces insert")
    # A batch is handled in one go on the event loop: 50 span batches of 500 spans take about
    # a second, 200 took several (health checks and the sweep waited meanwhile).
    batch_max_messages: int = setting(
        50, "Kafka messages per agent batch (each one span or a span batch of up to ~500)"
    )
    batch_max_wait_ms: int = setting(500, "longest wait to fill a batch")
    retry_initial_backoff_ms: int = setting(
        200, "first retry delay of a failed insert (doubles each time)"
    )
    retry_max_backoff_ms: int = setting(30_000, "longest retry delay of a failed insert")

    def validate(self) -> None:
        """Raise ConfigError naming the first bad key."""
        _positive("sink", "batch_max_spans", self.batch_max_spans)
        _positive("sink", "batch_max_messages", self.batch_max_messages)
        _positive("sink", "batch_max_wait_ms", self.batch_max_wait_ms)
        _positive("sink", "retry_initial_backoff_ms", self.retry_initial_backoff_ms)
        if self.retry_max_backoff_ms < self.retry_initial_backoff_ms:
            raise ConfigError(
                "invalid sink.retry_max_backoff_ms: should be >= sink.retry_initial_backoff_ms "
                "(set TRACEPIPE_SINK_RETRY_MAX_BACKOFF_MS)"
            )


@dataclass(frozen=True)
class IngestConfig:
    """Validation limits for incoming spans: what is repaired (truncated) and what is rejected."""

    max_record_bytes: int = setting(1_048_576, "larger records go to the DLQ (record-too-large)")
    max_attributes: int = setting(
        128, "attributes kept per span/event/link; the rest counted as dropped"
    )
    max_attribute_value_bytes: int = setting(
        4096, "longer string/bytes values are truncated with a marker"
    )
    max_events: int = setting(128, "events kept per span; the rest counted as dropped")
    max_links: int = setting(128, "links kept per span; the rest counted as dropped")

    def validate(self) -> None:
        """Raise ConfigError naming the first bad key."""
        for name in (
            "max_record_bytes",
            "max_attributes",
            "max_attribute_value_bytes",
            "max_events",
            "max_links",
        ):
            _positive("ingest", name, getattr(self, name))


@dataclass(frozen=True)
class AssemblyConfig:
    """Trace assembly: session windows per trace id, their bounds, and late spans."""

    trace_idle_ms: int = setting(5_000, "emit a trace after no span arrived for this long")
    trace_max_age_ms: int = setting(60_000, "emit a trace at this age since its first span")
    max_open_traces: int = setting(100_000, "open traces held; the oldest are emitted early")
    max_spans_per_trace: int = setting(
        10_000, "spans held per trace; more are stored and counted, not held"
    )
    late_retention_ms: int = setting(
        600_000, "how long an emitted trace is remembered to re-emit it with late spans"
    )
    max_retained_traces: int = setting(
        100_000, "emitted traces remembered for late spans; past it the oldest are forgotten"
    )
    tombstone_retention_ms: int = setting(
        3_600_000, "after late retention, how long a trace's last version is remembered"
    )
    max_tombstones: int = setting(
        1_000_000, "forgotten traces' last versions remembered; past it the oldest go first"
    )
    sweep_interval_ms: int = setting(1_000, "how often open traces are checked for emission")
    compact_spans: bool = setting(
        True, "hold spans as compact tuples (~half the memory of dicts, ~1 µs/span more CPU)"
    )
    include_spans: bool = setting(
        False,
        "trace records on tracepipe.traces carry full spans, for consumers of that topic (off: "
        "span ids only; tracepipe's own stages need neither)",
    )

    def validate(self) -> None:
        """Raise ConfigError naming the first bad key."""
        for name in (
            "max_retained_traces",
            "tombstone_retention_ms",
            "max_tombstones",
            "trace_idle_ms",
            "trace_max_age_ms",
            "max_open_traces",
            "max_spans_per_trace",
            "late_retention_ms",
            "sweep_interval_ms",
        ):
            _positive("assembly", name, getattr(self, name))
        if self.trace_max_age_ms < self.trace_idle_ms:
            raise ConfigError(
                "invalid assembly.trace_max_age_ms: should be >= assembly.trace_idle_ms "
                "(set TRACEPIPE_ASSEMBLY_TRACE_MAX_AGE_MS)"
            )


@dataclass(frozen=True)
class SamplingConfig:
    """Tail sampling of otel_traces writes; latency aggregates always see every span."""

    enabled: bool = setting(False, "write only sampled traces' spans to otel_traces")
    keep_errors: bool = setting(True, "keep every trace with an error span")
    latency_threshold_ms: int = setting(1_000, "keep traces slower than this")
    latency_thresholds: str = setting(
        "", "per root operation thresholds, 'op=ms,op2=ms' (override latency_threshold_ms)"
    )
    probability: float = setting(0.1, "share of the remaining traces kept (0..1)")
    rate_limit_per_s: float = setting(0.0, "most traces kept per second by probability (0: off)")

    def validate(self) -> None:
        """Raise ConfigError naming the first bad key."""
        if not 0.0 <= self.probability <= 1.0:
            raise ConfigError(
                f"invalid sampling.probability: {self.probability}; should be between 0 and 1 "
                "(set TRACEPIPE_SAMPLING_PROBABILITY)"
            )
        _positive("sampling", "latency_threshold_ms", self.latency_threshold_ms)
        if self.rate_limit_per_s < 0:
            raise ConfigError(
                "invalid sampling.rate_limit_per_s: should be >= 0 "
                "(set TRACEPIPE_SAMPLING_RATE_LIMIT_PER_S)"
            )
        for item in filter(None, (p.strip() for p in self.latency_thresholds.split(","))):
            op, sep, ms = item.rpartition("=")
            if not sep or not op or not ms.strip().isdigit():
                raise ConfigError(
                    f"invalid sampling.latency_thresholds item {item!r}; should be "
                    "'operation=milliseconds' (set TRACEPIPE_SAMPLING_LATENCY_THRESHOLDS)"
                )


@dataclass(frozen=True)
class AggregationConfig:
    """Latency windows (RED per service/operation) and service-graph edges, in event time."""

    window_ms: int = setting(10_000, "tumbling window length, aligned to the epoch")
    allowed_lateness_ms: int = setting(
        30_000, "watermark lag behind the highest span end seen; later spans are counted late"
    )
    partition_idle_ms: int = setting(
        30_000, "a partition quiet this long moves its watermark with wall clock"
    )
    relative_accuracy: float = setting(0.01, "DDSketch relative accuracy of percentiles")
    exemplars: int = setting(5, "slowest trace ids kept per window")
    emit_interval_ms: int = setting(1_000, "how often closed windows and watermarks are sent")

    def validate(self) -> None:
        """Raise ConfigError naming the first bad key."""
        for name in ("window_ms", "partition_idle_ms", "emit_interval_ms"):
            _positive("aggregation", name, getattr(self, name))
        if self.allowed_lateness_ms < 0:
            raise ConfigError(
                "invalid aggregation.allowed_lateness_ms: should be >= 0 "
                "(set TRACEPIPE_AGGREGATION_ALLOWED_LATENESS_MS)"
            )
        if not 0.0 < self.relative_accuracy < 1.0:
            raise ConfigError(
                f"invalid aggregation.relative_accuracy: {self.relative_accuracy}; should be "
                "between 0 and 1, e.g. 0.01 (set TRACEPIPE_AGGREGATION_RELATIVE_ACCURACY)"
            )
        if self.exemplars < 0:
            raise ConfigError(
                "invalid aggregation.exemplars: should be >= 0 "
                "(set TRACEPIPE_AGGREGATION_EXEMPLARS)"
            )


@dataclass(frozen=True)
class AlertConfig:
    """Latency alerts on the merged windows: the rules file and the webhook forwarder."""

    rules_file: str = path_setting(
        "", "YAML alert rules, reloaded when it changes (empty: the built-in default rules)"
    )
    attribution_baseline_windows: int = setting(
        6, "windows before an incident whose slow traces an alert's attribution compares against"
    )
    webhook_urls: str = setting(
        "", "comma-separated URLs that get Alertmanager-compatible JSON (empty: none)"
    )
    webhook_timeout_s: float = setting(5.0, "timeout of one webhook POST")
    webhook_max_attempts: int = setting(
        6, "POSTs per alert event and URL before it is parked in the DLQ"
    )
    webhook_initial_backoff_ms: int = setting(500, "first retry delay of a failed webhook POST")
    webhook_max_backoff_ms: int = setting(30_000, "longest retry delay of a failed webhook POST")

    def validate(self) -> None:
        """Raise ConfigError naming the first bad key."""
        for name in (
            "attribution_baseline_windows",
            "webhook_timeout_s",
            "webhook_max_attempts",
            "webhook_initial_backoff_ms",
            "webhook_max_backoff_ms",
        ):
            _positive("alert", name, getattr(self, name))
        for url in filter(None, (u.strip() for u in self.webhook_urls.split(","))):
            if not url.startswith(("http://", "https://")):
                raise ConfigError(
                    f"invalid alert.webhook_urls item {url!r}; should be an http(s) URL "
                    "(set TRACEPIPE_ALERT_WEBHOOK_URLS)"
                )


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
        _positive("worker", "stream_buffer_maxsize", self.stream_buffer_maxsize)
        _positive("worker", "consumer_max_fetch_bytes", self.consumer_max_fetch_bytes)
        if not MIN_SESSION_TIMEOUT_MS <= self.session_timeout_ms <= MAX_SESSION_TIMEOUT_MS:
            raise ConfigError(
                f"invalid worker.session_timeout_ms: {self.session_timeout_ms}; should be from "
                f"{MIN_SESSION_TIMEOUT_MS} (the broker's default group.min.session.timeout.ms) "
                f"to {MAX_SESSION_TIMEOUT_MS} (Faust's request timeout) "
                "(set TRACEPIPE_WORKER_SESSION_TIMEOUT_MS)"
            )


@dataclass(frozen=True)
class Settings:
    """Every stage's config in one frozen object."""

    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    local_kafka: LocalKafkaConfig = field(default_factory=LocalKafkaConfig)
    clickhouse: ClickHouseConfig = field(default_factory=ClickHouseConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    sink: SpanSinkConfig = field(default_factory=SpanSinkConfig)
    assembly: AssemblyConfig = field(default_factory=AssemblyConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    aggregation: AggregationConfig = field(default_factory=AggregationConfig)
    alert: AlertConfig = field(default_factory=AlertConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)

    def validate(self) -> Settings:
        """Validate every section; return self so calls chain."""
        for section in dataclasses.fields(self):
            getattr(self, section.name).validate()
        return self

    def replace(self, section: str, **values: Any) -> Settings:
        """A copy with some keys of one section changed (for CLI flags and tests)."""
        current = getattr(self, section)
        return dataclasses.replace(self, **{section: dataclasses.replace(current, **values)})


def _section_types() -> dict[str, type[Any]]:
    hints = typing.get_type_hints(Settings)
    return {f.name: hints[f.name] for f in dataclasses.fields(Settings)}


def _coerce(section: str, key: str, raw: Any, target: Any) -> Any:
    try:
        if target is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if target is int:
            if isinstance(raw, bool):
                raise ValueError(raw)
            return int(raw)
        if target is float:
            return float(raw)
        return str(raw)
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"invalid {section}.{key}: {raw!r} is not a {target.__name__} "
            f"(set {ENV_PREFIX}{section.upper()}_{key.upper()})"
        ) from err


def _read_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(
            f"config file {path} does not exist; fix the path given by --config or "
            f"{ENV_PREFIX}CONFIG"
        )
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except Exception as err:
        raise ConfigError(f"config file {path} cannot be parsed: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: top level must be a table of sections")
    return data


def _env_values(env: Mapping[str, str], sections: Mapping[str, type[Any]]) -> dict[str, Any]:
    # Longest section name first so TRACEPIPE_LOCAL_KAFKA_PORT is local_kafka.port, not kafka.
    names = sorted(sections, key=len, reverse=True)
    out: dict[str, dict[str, str]] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == f"{ENV_PREFIX}CONFIG":
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        for section in names:
            if rest.startswith(section + "_"):
                out.setdefault(section, {})[rest[len(section) + 1 :]] = value
                break
    return dict(out)


def _chdb_url_path(url: str, env: Mapping[str, str]) -> str:
    # Only the path of an embedded engine's URL; an empty one is left for validate() to name.
    path = unquote(url[len(CHDB_SCHEME) :])
    if not url.startswith(CHDB_SCHEME) or path in ("", "/"):
        return url
    return CHDB_SCHEME + quote(str(resolve_path(path, env)), safe="/")


def _absolute_paths(section: Any, env: Mapping[str, str]) -> Any:
    """The section with its path settings made absolute, so that a command run from any
    directory (or one that changes directory) uses the same files."""
    changed = {
        f.name: str(resolve_path(value, env))
        for f in dataclasses.fields(section)
        if f.metadata.get("path") and (value := getattr(section, f.name))
    }
    if isinstance(section, ClickHouseConfig):
        changed["url"] = _chdb_url_path(section.url, env)
    return dataclasses.replace(section, **changed)


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Build and validate Settings from defaults, the optional config file and the environment;
    path settings come out absolute (see `_absolute_paths`)."""
    env = os.environ if env is None else env
    sections = _section_types()
    layers: list[dict[str, Any]] = []
    file_name = config_file or env.get(f"{ENV_PREFIX}CONFIG")
    if file_name:
        layers.append(_read_file(Path(file_name)))
    layers.append(_env_values(env, sections))

    built: dict[str, Any] = {}
    for section, cls in sections.items():
        hints = typing.get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for layer in layers:
            given = layer.get(section, {})
            if not isinstance(given, dict):
                raise ConfigError(f"config section [{section}] must be a table of keys")
            for key, raw in given.items():
                if key not in known:
                    raise ConfigError(
                        f"unknown setting {section}.{key}; known keys are: "
                        + ", ".join(sorted(known))
                    )
                values[key] = _coerce(section, key, raw, hints[key])
        built[section] = _absolute_paths(cls(**values), env)
    for layer in layers[:-1]:
        for section in layer:
            if section not in sections:
                raise ConfigError(
                    f"unknown config section [{section}]; known sections are: "
                    + ", ".join(sections)
                )
    return Settings(**built).validate()


HOME_KEY = "home"
"""The key `tracepipe config` and README show the data home under (it has no section)."""


def settings_table() -> list[tuple[str, str, str, str]]:
    """Every knob as (key, env var, default, doc) rows, for README and `tracepipe config`;
    the first is the data home."""
    rows: list[tuple[str, str, str, str]] = [
        (
            HOME_KEY,
            HOME_VARIABLE,
            repr(HOME_DEFAULT),
            f"where data lives unless a path setting says otherwise ({IN_HOME}/... below)",
        )
    ]
    for section, cls in _section_types().items():
        for f in dataclasses.fields(cls):
            doc = f.metadata.get("doc", "")
            rows.append(
                (
                    f"{section}.{f.name}",
                    f"{ENV_PREFIX}{section.upper()}_{f.name.upper()}",
                    repr(f.default),
                    doc,
                )
            )
    return rows
