"""Reading what tracepipe stored: through a running worker's HTTP API, or the warehouse directly.

In embedded mode (chDB) the worker owns the data path, so while one runs the CLI asks it;
when none runs, the CLI opens the path itself.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from streams.config import Settings
from streams.errors import DataPathInUseError, InputError, QueryRefusedError, WarehouseError
from streams.paths import resolve_path
from streams.sink.spans import DEDUPLICATED_SPANS
from streams.sink.windows import LATENCY
from streams.warehouse import Warehouse, open_warehouse, parse_url, quote_string


class Reader(Protocol):
    """Anything that runs a read-only query and returns rows as dicts."""

    def query_dicts(self, sql: str) -> list[dict[str, Any]]:
        """Rows of the query as column -> value dicts."""
        ...


class ReadOnlyReader:
    """A Reader that runs every statement as user SQL: one read-only statement, under
    ClickHouse's readonly=1 (`Warehouse.query_readonly`)."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def query_dicts(self, sql: str) -> list[dict[str, Any]]:
        """Rows of the statement as dicts; QueryRefusedError when it is not read-only."""
        return self.warehouse.query_readonly(sql)


class WorkerReader:
    """Runs read-only queries on a running worker's `/api/query` (which runs them the way
    ReadOnlyReader does)."""

    def __init__(self, base_url: str, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def query_dicts(self, sql: str) -> list[dict[str, Any]]:
        """Rows of the query as dicts; raises WarehouseError with the engine's message."""
        request = urllib.request.Request(
            f"{self.base_url}/api/query",
            data=json.dumps({"sql": sql}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                body: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as err:
            body = json.loads(err.read() or b"{}")
            detail = body.get("error", str(err))
            if body.get("refused"):
                raise QueryRefusedError(detail) from err
            raise WarehouseError(f"query failed on the worker: {detail}") from err
        except (urllib.error.URLError, OSError) as err:
            raise WarehouseError(f"worker at {self.base_url} did not answer: {err}") from err
        rows: list[dict[str, Any]] = body["rows"]
        return rows


def worker_url(settings: Settings) -> str:
    """The base URL of the worker's web server."""
    return f"http://{settings.worker.web_host}:{settings.worker.web_port}"


def worker_stats(settings: Settings, timeout_s: float = 2.0) -> dict[str, Any] | None:
    """What the worker on the configured web port says in /api/stats; None when none answers."""
    try:
        with urllib.request.urlopen(f"{worker_url(settings)}/api/stats", timeout=timeout_s) as r:
            stats: dict[str, Any] = json.load(r)
            return stats
    except (urllib.error.URLError, OSError, ValueError):
        return None


def worker_running(settings: Settings, timeout_s: float = 2.0) -> bool:
    """True when a worker answers on the configured web port."""
    return worker_stats(settings, timeout_s) is not None


TIMING_SETTINGS = (
    "aggregation.window_ms",
    "aggregation.allowed_lateness_ms",
    "assembly.trace_idle_ms",
)
"""The settings that decide when windows and edges appear; a worker publishes its own in
/api/stats, since a worker started with other values (the demo's) is the one in force."""


def timing_settings(settings: Settings) -> dict[str, int]:
    """The TIMING_SETTINGS of `settings`, by dotted key."""
    values: dict[str, int] = {}
    for key in TIMING_SETTINGS:
        section, name = key.split(".", 1)
        values[key] = int(getattr(getattr(settings, section), name))
    return values


def settings_in_force(settings: Settings) -> tuple[Settings, str]:
    """`settings` with the running worker's TIMING_SETTINGS, and where the values come from (for
    messages): the worker's, or this command's own when no worker answers."""
    stats = worker_stats(settings)
    url = worker_url(settings)
    published = stats.get("settings") if stats is not None else None
    if not isinstance(published, dict):
        where = "this command's settings" if stats is not None else (
            f"this command's settings; no worker answers at {url}"
        )
        return settings, where
    in_force = settings
    for key in TIMING_SETTINGS:
        if isinstance(published.get(key), int):
            section, name = key.split(".", 1)
            in_force = in_force.replace(section, **{name: published[key]})
    return in_force, f"the settings of the worker at {url}"


@contextmanager
def open_reader(settings: Settings) -> Iterator[Reader]:
    """A reader over the stored data: the running worker if there is one, else the warehouse.
    Either way each statement runs read-only, as the worker's `/api/query` runs it."""
    if worker_running(settings):
        yield WorkerReader(worker_url(settings))
        return
    parsed = parse_url(settings.clickhouse.url)
    if parsed.scheme == "chdb" and not resolve_path(parsed.path).is_dir():
        # Opening it would create an empty store there, and every query would fail on it.
        raise WarehouseError(
            f"no tracepipe data at {resolve_path(parsed.path)} yet (clickhouse.url): start "
            "`tracepipe worker` (or `tracepipe demo`), or point TRACEPIPE_HOME or "
            "TRACEPIPE_CLICKHOUSE_URL at the store you mean"
        )
    try:
        warehouse = open_warehouse(settings.clickhouse)
    except DataPathInUseError as err:
        raise DataPathInUseError(
            err.path,
            err.owner,
            f"no worker answers at {worker_url(settings)} to query it for you: if that is a "
            "worker still starting, try again once it serves; if it serves on another port, set "
            "worker.web_port (TRACEPIPE_WORKER_WEB_PORT) to it; else stop that process",
        ) from err
    try:
        yield ReadOnlyReader(warehouse)
    finally:
        warehouse.close()


def count_spans(reader: Reader, where: str = "1") -> int:
    """How many spans of otel_traces match `where` (an SQL condition), each span once."""
    rows = reader.query_dicts(f"SELECT count() AS n FROM {DEDUPLICATED_SPANS} WHERE {where}")
    return int(rows[0]["n"])


def recent_spans(
    reader: Reader, trace_id: str | None, service: str | None, limit: int
) -> list[dict[str, Any]]:
    """`tracepipe query spans`: the newest spans (of a trace, of a service), each once."""
    conditions = ["1"]
    if trace_id:
        conditions.append(f"TraceId = {quote_string(trace_id)}")
    if service:
        conditions.append(f"ServiceName = {quote_string(service)}")
    return reader.query_dicts(
        "SELECT Timestamp, TraceId, SpanId, ParentSpanId, ServiceName, SpanName, "
        f"Duration, StatusCode FROM {DEDUPLICATED_SPANS} WHERE {' AND '.join(conditions)} "
        f"ORDER BY Timestamp DESC, TraceId, SpanId LIMIT {int(limit)}"
    )


_HEX_ID = re.compile(r"[0-9a-f]{16}|[0-9a-f]{32}").fullmatch


def parse_trace_id(text: str) -> str:
    """A trace id as stored (32 lowercase hex) from what a user typed: 32 hex digits, or 16 for
    a 64-bit id (Jaeger, Zipkin), left-padded with zeros. InputError says what an id looks like."""
    wanted = text.strip().lower()
    if not _HEX_ID(wanted) or not wanted.strip("0"):
        raise InputError(
            f"{text!r} is not a trace id: give 32 hex digits, or 16 for a 64-bit id as Jaeger and "
            "Zipkin show it (tracepipe query spans lists recent ones)"
        )
    return wanted.rjust(32, "0")


KNOWN_SERVICES_LISTED = 20
"""How many known service names an unknown-service message lists."""


def known_services(reader: Reader) -> list[str]:
    """The names of the services that have spans or latency windows stored, sorted."""
    rows = reader.query_dicts(
        f"SELECT service FROM (SELECT ServiceName AS service FROM {DEDUPLICATED_SPANS} "
        f"UNION DISTINCT SELECT ServiceName AS service FROM {LATENCY}) ORDER BY service"
    )
    return [str(r["service"]) for r in rows]


def unknown_service(reader: Reader, service: str) -> str | None:
    """None when `service` has spans or windows stored; else a line naming it unknown and the
    known ones."""
    known = known_services(reader)
    if service in known:
        return None
    if not known:
        return f"unknown service {service!r}: no spans or windows are stored yet"
    listed = ", ".join(known[:KNOWN_SERVICES_LISTED])
    if len(known) > KNOWN_SERVICES_LISTED:
        listed += f" and {len(known) - KNOWN_SERVICES_LISTED} more"
    return f"unknown service {service!r}; known services: {listed}"


def time_range(column: str, since_ns: int, until_ns: int) -> str:
    """A SQL condition: the DateTime64 `column` is in [since, until) (unix nanoseconds)."""
    return (
        f"{column} >= fromUnixTimestamp64Nano(toInt64({int(since_ns)})) "
        f"AND {column} < fromUnixTimestamp64Nano(toInt64({int(until_ns)}))"
    )


quote = quote_string
"""A ClickHouse string literal (the warehouse's one quoting rule)."""
