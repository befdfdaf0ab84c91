"""The server backend: a ClickHouse server over the native TCP protocol (clickhouse-driver).

A connection error (refused, reset, timed out) is retried with exponential backoff a bounded
number of times, reconnecting each time; then WarehouseError says what to check. An error
the server reports (bad SQL, unknown table) is not retried. A retried insert may be stored
twice if the first attempt reached the server before the connection broke: ClickHouse
deduplicates identical insert blocks only on Replicated tables (or with
``non_replicated_deduplication_window``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Any, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streams.errors import MissingDependencyError, WarehouseError
from streams.warehouse import ChType, parse_type, quote_identifier
from streams.warehouse.readonly import READONLY_SETTING
from streams.warehouse.typed import (
    INSERT_SETTINGS,
    Converter,
    TypedWarehouse,
    container_converter,
    sql_preview,
)

T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _import_driver() -> tuple[Any, Any]:
    try:
        from clickhouse_driver import Client, errors
    except ImportError as err:
        raise MissingDependencyError(
            "the ClickHouse server backend needs clickhouse-driver: "
            "pip install 'clickhouse-driver>=0.2.9,<0.3'"
        ) from err
    return Client, errors


class NativeWarehouse(TypedWarehouse):
    """A Warehouse on a ClickHouse server, through clickhouse-driver's native protocol."""

    def __init__(
        self,
        host: str,
        port: int = 9000,
        database: str = "default",
        user: str = "default",
        password: str = "",
        connect_timeout_s: float = 10.0,
        *,
        url: str | None = None,
        attempts: int = 5,
        initial_backoff_s: float = 0.2,
        max_backoff_s: float = 5.0,
        send_receive_timeout_s: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        client_cls, errors = _import_driver()
        self.url = url or f"clickhouse://{host}:{port}/{database}"
        self.host = host
        self.port = port
        self.database = database
        self.attempts = attempts
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._server_errors: tuple[type[BaseException], ...] = (errors.ServerException,)
        self._connection_errors: tuple[type[BaseException], ...] = (
            errors.NetworkError,
            errors.SocketTimeoutError,
            errors.UnexpectedPacketFromServerError,
            EOFError,
            OSError,
        )
        self._client: Any = client_cls(
            host=host,
            port=port,
            database=database,
            user=user,
            password=password,
            connect_timeout=connect_timeout_s,
            send_receive_timeout=send_receive_timeout_s,
            sync_request_timeout=connect_timeout_s,
        )
        super().__init__()
        self._closed = False

    def _with_retry(self, what: str, call: Callable[[], T]) -> T:
        if self._closed:
            raise WarehouseError(f"warehouse {self.host}:{self.port} is closed")
        backoff = self.initial_backoff_s
        last: BaseException | None = None
        for attempt in range(1, self.attempts + 1):
            try:
                return call()
            except self._server_errors as err:
                raise WarehouseError(f"ClickHouse refused {what}: {err}") from err
            except self._connection_errors as err:
                last = err
                # Drop the broken socket so the next attempt opens a fresh connection.
                self._client.disconnect()
                if attempt < self.attempts:
                    self._sleep(backoff)
                    backoff = min(backoff * 2, self.max_backoff_s)
        raise WarehouseError(
            f"cannot reach ClickHouse at {self.host}:{self.port} for {what} after "
            f"{self.attempts} attempts (last error: {last}); check that the server is running "
            "and listening there, that clickhouse.url (TRACEPIPE_CLICKHOUSE_URL) names its "
            "native TCP port (9000 by default, not the HTTP port 8123), and the user, password "
            "and database in it"
        ) from last

    def execute(self, sql: str) -> None:
        """Run a statement that returns no rows (DDL, commands)."""
        self._with_retry(repr(sql_preview(sql, 120)), lambda: self._client.execute(sql))
        # DDL may change a table's columns; forget what we know about them.
        self._types.clear()

    def _select(self, sql: str, readonly: bool = False) -> tuple[list[str], list[list[Any]]]:
        # Sent with the query: the server applies it to this statement alone.
        settings = {READONLY_SETTING: 1} if readonly else None
        rows, columns = self._with_retry(
            repr(sql_preview(sql, 120)),
            lambda: self._client.execute(sql, with_column_types=True, settings=settings),
        )
        server_tz = self._server_timezone()
        names = [name for name, _ in columns]
        decoders = [_decoder(parse_type(t), server_tz) for _, t in columns]
        out: list[list[Any]] = []
        for row in rows:
            values = list(row)
            for i, decode in enumerate(decoders):
                if decode is not None:
                    values[i] = decode(values[i])
            out.append(values)
        return names, out

    def _server_timezone(self) -> Any:
        info = getattr(self._client.connection, "server_info", None)
        name = info.get_timezone() if info is not None else None
        try:
            return ZoneInfo(name) if name else UTC
        except (ZoneInfoNotFoundError, ValueError):
            return UTC

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Insert rows (values in `columns` order) in one block; return rows written."""
        if not rows:
            return 0
        types = self._column_types(table)
        unknown = [c for c in columns if c not in types]
        if unknown:
            raise WarehouseError(
                f"cannot insert into {table}: unknown column(s) {', '.join(unknown)}"
            )
        width = len(columns)
        bad = next((i for i, r in enumerate(rows) if len(r) != width), None)
        if bad is not None:
            raise WarehouseError(
                f"cannot insert into {table}: row {bad} has {len(rows[bad])} values for "
                f"{width} columns"
            )
        data: list[list[Any]] = []
        for column, values in zip(columns, zip(*rows, strict=True), strict=True):
            encode = _encoder(types[column])
            data.append([encode(v) for v in values] if encode is not None else list(values))
        column_list = ", ".join(quote_identifier(c) for c in columns)
        sql = f"INSERT INTO {table} ({column_list}) VALUES"
        written = self._with_retry(
            f"an insert into {table}",
            lambda: self._client.execute(sql, data, columnar=True, settings=INSERT_SETTINGS),
        )
        return int(written) if isinstance(written, int) else len(rows)

    def insert_arrow(self, table: str, data: Any) -> int:
        """Insert a pyarrow Table through `insert` (the server takes Python columns)."""
        columns = list(data.column_names)
        values = [_python_column(data.column(c)) for c in columns]
        return self.insert(table, columns, list(zip(*values, strict=True)))

    def close(self) -> None:
        """Close the connection. Idempotent."""
        if not self._closed:
            self._closed = True
            self._client.disconnect()

    def __enter__(self) -> NativeWarehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"NativeWarehouse({self.host!r}, {self.port}, {self.database!r})"


def _aware(value: datetime, server_tz: Any) -> datetime:
    # clickhouse-driver returns naive datetimes in the server's time zone.
    return value.replace(tzinfo=server_tz) if value.tzinfo is None else value


def _to_ns(value: datetime) -> int:
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _decoder(t: ChType, server_tz: Any) -> Converter | None:
    """A function turning one clickhouse-driver value of type `t` into ours; None: unchanged."""
    name = t.name
    if name in ("Nullable", "LowCardinality"):
        inner = _decoder(t.args[0], server_tz)
        if inner is None:
            return None
        return lambda v: None if v is None else inner(v)
    if name == "DateTime64":
        return lambda v: None if v is None else _to_ns(_aware(v, server_tz))
    if name == "DateTime":
        return lambda v: None if v is None else _aware(v, server_tz).astimezone(UTC)
    if name in ("UUID", "IPv4", "IPv6"):
        return lambda v: None if v is None else str(v)
    if name in ("Array", "Map"):
        return container_converter(t, lambda part: _decoder(part, server_tz))
    if name == "Tuple":
        items = [_decoder(a, server_tz) or (lambda x: x) for a in t.args]
        return lambda v: tuple(f(x) for f, x in zip(items, v, strict=False))
    return None


def _encoder(t: ChType) -> Converter | None:
    """A function turning one of our insert values of type `t` into clickhouse-driver's."""
    name = t.name
    if name in ("Nullable", "LowCardinality"):
        inner = _encoder(t.args[0])
        if inner is None:
            return None
        return lambda v: None if v is None else inner(v)
    if name == "DateTime64":
        # The driver takes ints as raw ticks of the column's precision; ours are nanoseconds.
        precision = int(t.params[0]) if t.params else 3
        divisor = 10 ** (9 - precision)
        return lambda v: v // divisor if isinstance(v, int) else v
    if name in ("Array", "Map"):
        return container_converter(t, _encoder)
    if name in ("UUID",):
        return lambda v: UUID(v) if isinstance(v, str) else v
    if name == "IPv4":
        return lambda v: IPv4Address(v) if isinstance(v, str) else v
    if name == "IPv6":
        return lambda v: IPv6Address(v) if isinstance(v, str) else v
    return None



def _python_column(column: Any) -> list[Any]:
    """An Arrow column's values in the insert conventions: int ns for timestamps, dicts for
    maps (one level of list around either, as Nested columns have)."""
    import pyarrow as pa  # type: ignore[import-untyped]

    t = column.type
    inner = t.value_type if pa.types.is_list(t) else None
    if pa.types.is_timestamp(t):
        return list(column.cast(pa.int64()).to_pylist())
    if inner is not None and pa.types.is_timestamp(inner):
        return list(column.cast(pa.list_(pa.int64())).to_pylist())
    if pa.types.is_map(t):
        return [dict(v) for v in column.to_pylist()]
    if inner is not None and pa.types.is_map(inner):
        return [[dict(m) for m in v] for v in column.to_pylist()]
    return list(column.to_pylist())
