"""Settings, every stage's config in one object, and how it is loaded: defaults < config file
< `TRACEPIPE_<SECTION>_<KEY>` environment variables, path settings made absolute."""

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

from streams.config.aggregation import AggregationConfig
from streams.config.alert import AlertConfig
from streams.config.assembly import AssemblyConfig, SamplingConfig
from streams.config.broker import KafkaConfig, LocalKafkaConfig
from streams.config.clickhouse import CHDB_SCHEME, ClickHouseConfig
from streams.config.ingest import IngestConfig
from streams.config.setting import ENV_PREFIX
from streams.config.sink import SpanSinkConfig
from streams.config.worker import WorkerConfig
from streams.errors import ConfigError
from streams.paths import HOME_DEFAULT, HOME_VARIABLE, IN_HOME, resolve_path

REMOVED_SETTINGS: dict[str, str] = {
    "assembly.compact_spans": "spans are always held compact",
}
"""Settings that are gone, with why nothing replaces them: giving one is an error that says so."""


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
                removed = REMOVED_SETTINGS.get(f"{section}.{key}")
                if removed is not None:
                    raise ConfigError(
                        f"setting {section}.{key} was removed and needs no replacement "
                        f"({removed}); delete it from the config file or unset "
                        f"{ENV_PREFIX}{section.upper()}_{key.upper()}"
                    )
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
