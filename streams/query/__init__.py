"""Reading what tracepipe stored: through a running worker's HTTP API, or the warehouse directly.

In embedded mode (chDB) the worker owns the data path, so while one runs the CLI asks it;
when none runs, the CLI opens the path itself.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from streams.config import Settings
from streams.errors import DataPathInUseError, WarehouseError
from streams.paths import resolve_path
from streams.sink.spans import DEDUPLICATED_SPANS
from streams.warehouse import open_warehouse, parse_url, quote_string


class Reader(Protocol):
    """Anything that runs a read-only query and returns rows as dicts."""

    def query_dicts(self, sql: str) -> list[dict[str, Any]]:
        """Rows of the query as column -> value dicts."""
        ...


class WorkerReader:
    """Runs read-only queries on a running worker's `/api/query`."""

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
            detail = json.loads(err.read() or b"{}").get("error", str(err))
            raise WarehouseError(f"query failed on the worker: {detail}") from err
        except (urllib.error.URLError, OSError) as err:
            raise WarehouseError(f"worker at {self.base_url} did not answer: {err}") from err
        rows: list[dict[str, Any]] = body["rows"]
        return rows


def worker_url(settings: Settings) -> str:
    """The base URL of the worker's web server."""
    return f"http://{settings.worker.web_host}:{settings.worker.web_port}"


def worker_running(settings: Settings, timeout_s: float = 2.0) -> bool:
    """True when a worker answers on the configured web port."""
    try:
        with urllib.request.urlopen(f"{worker_url(settings)}/api/stats", timeout=timeout_s):
            return True
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def open_reader(settings: Settings) -> Iterator[Reader]:
    """A reader over the stored data: the running worker if there is one, else the warehouse."""
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
        yield warehouse
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


def time_range(column: str, since_ns: int, until_ns: int) -> str:
    """A SQL condition: the DateTime64 `column` is in [since, until) (unix nanoseconds)."""
    return (
        f"{column} >= fromUnixTimestamp64Nano(toInt64({int(since_ns)})) "
        f"AND {column} < fromUnixTimestamp64Nano(toInt64({int(until_ns)}))"
    )


quote = quote_string
"""A ClickHouse string literal (the warehouse's one quoting rule)."""
