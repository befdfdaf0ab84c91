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
from streams.errors import QueryRefusedError, WarehouseError
from streams.sink.spans import DEDUPLICATED_SPANS
from streams.warehouse import Warehouse, open_warehouse, quote_string


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


def worker_running(settings: Settings, timeout_s: float = 2.0) -> bool:
    """True when a worker answers on the configured web port."""
    try:
        with urllib.request.urlopen(f"{worker_url(settings)}/api/stats", timeout=timeout_s):
            return True
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def open_reader(settings: Settings) -> Iterator[Reader]:
    """A reader over the stored data: the running worker if there is one, else the warehouse.
    Either way each statement runs read-only, as the worker's `/api/query` runs it."""
    if worker_running(settings):
        yield WorkerReader(worker_url(settings))
        return
    warehouse = open_warehouse(settings.clickhouse)
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


def time_range(column: str, since_ns: int, until_ns: int) -> str:
    """A SQL condition: the DateTime64 `column` is in [since, until) (unix nanoseconds)."""
    return (
        f"{column} >= fromUnixTimestamp64Nano(toInt64({int(since_ns)})) "
        f"AND {column} < fromUnixTimestamp64Nano(toInt64({int(until_ns)}))"
    )


quote = quote_string
"""A ClickHouse string literal (the warehouse's one quoting rule)."""
