"""The ClickHouse warehouse: one small interface, two backends chosen by URL.

URLs:

- ``chdb://<path>``: the embedded engine (chDB) with its data under ``<path>``.
  ``chdb:///abs/path`` is absolute (three slashes); ``chdb://rel/path`` (two slashes) is
  relative to the working directory when the settings are read (``load_settings`` makes it
  absolute). The default, ``chdb://$TRACEPIPE_HOME/chdb``, is under the data home
  (``streams.paths.data_home``).
- ``clickhouse://[user[:password]@]host[:port][/database]``: a server through
  clickhouse-driver's native protocol (port 9000, database ``default`` unless given).

Value conventions, the same for both backends:

- insert: DateTime64(p) takes int unix nanoseconds (whatever p); DateTime takes int unix
  seconds or an aware datetime; Date takes a date; Map takes dict; Array takes list;
  Nested sub-columns (``Events.Timestamp``, ``Events.Name``, ...) are separate columns whose
  values are lists; String takes str; (U)Int takes int.
- query: DateTime64 -> int unix nanoseconds; DateTime -> aware UTC datetime; Date -> date;
  Map -> dict; Array -> list; Tuple -> tuple; Nullable NULL -> None; UUID/IPv4/IPv6/Enum -> str;
  Decimal -> decimal.Decimal; integers -> int; floats -> float; Bool -> bool.
  The server backend reads DateTime64 through clickhouse-driver, which keeps microseconds:
  its nanosecond ints end in 000.

Span kinds and status codes are stored as the OpenTelemetry Collector's ClickHouse exporter
writes them (pdata's ``SpanKind.String()`` / ``StatusCode.String()``): see SPAN_KIND_VALUES and
STATUS_CODE_VALUES.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from streams.config import DEFAULT_CHDB_URL, ClickHouseConfig
from streams.errors import ConfigError

# OTel span kind name -> the exporter's SpanKind column value.
SPAN_KIND_VALUES: Mapping[str, str] = {
    "UNSPECIFIED": "Unspecified",
    "INTERNAL": "Internal",
    "SERVER": "Server",
    "CLIENT": "Client",
    "PRODUCER": "Producer",
    "CONSUMER": "Consumer",
}

# OTel status code name -> the exporter's StatusCode column value.
STATUS_CODE_VALUES: Mapping[str, str] = {
    "UNSET": "Unset",
    "OK": "Ok",
    "ERROR": "Error",
}

DEFAULT_NATIVE_PORT = 9000


@runtime_checkable
class Warehouse(Protocol):
    """A ClickHouse engine: commands, queries and batch inserts with the conventions above."""

    url: str

    def execute(self, sql: str) -> None:
        """Run a statement that returns no rows (DDL, commands)."""
        ...

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Run a SELECT; rows as tuples of Python values."""
        ...

    def query_dicts(self, sql: str) -> list[dict[str, Any]]:
        """Run a SELECT; rows as dicts keyed by column name."""
        ...

    def query_readonly(self, sql: str) -> list[dict[str, Any]]:
        """Run one user statement, refused unless read-only, under ClickHouse's readonly=1."""
        ...

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Insert rows (values in `columns` order); return how many rows were written."""
        ...

    def insert_arrow(self, table: str, data: Any) -> int:
        """Insert a pyarrow Table whose column names are `table`'s (types as the insert
        conventions above, in Arrow: timestamp[ns] for DateTime64, map, list); return rows."""
        ...

    def close(self) -> None:
        """Release the connection (for chDB: the data path's lock). Idempotent."""
        ...


@dataclass(frozen=True)
class WarehouseURL:
    """A parsed warehouse URL: `scheme` is "chdb" (uses `path`) or "clickhouse" (the rest)."""

    scheme: str
    path: str = ""
    host: str = ""
    port: int = DEFAULT_NATIVE_PORT
    database: str = "default"
    user: str = "default"
    password: str = field(default="", repr=False)


def parse_url(url: str) -> WarehouseURL:
    """Parse a chdb:// or clickhouse:// URL; raise ConfigError naming the fix."""
    if url.startswith("chdb://"):
        path = url[len("chdb://") :]
        if not path or path == "/":
            raise ConfigError(
                f"invalid clickhouse.url: {url!r} has no data path; use chdb:///abs/path or "
                "chdb://relative/path (set TRACEPIPE_CLICKHOUSE_URL)"
            )
        return WarehouseURL(scheme="chdb", path=unquote(path))
    if url.startswith("clickhouse://"):
        parts = urlsplit(url)
        try:
            port = parts.port or DEFAULT_NATIVE_PORT
        except ValueError as err:
            raise ConfigError(
                f"invalid clickhouse.url: {url!r} has a bad port; use "
                "clickhouse://[user[:password]@]host[:port]/db (set TRACEPIPE_CLICKHOUSE_URL)"
            ) from err
        if not parts.hostname:
            raise ConfigError(
                f"invalid clickhouse.url: {url!r} has no host; use "
                "clickhouse://[user[:password]@]host[:port]/db (set TRACEPIPE_CLICKHOUSE_URL)"
            )
        database = parts.path.strip("/") or "default"
        if "/" in database:
            raise ConfigError(
                f"invalid clickhouse.url: {url!r}: the path must be one database name "
                "(set TRACEPIPE_CLICKHOUSE_URL)"
            )
        return WarehouseURL(
            scheme="clickhouse",
            host=parts.hostname,
            port=port,
            database=unquote(database),
            user=unquote(parts.username) if parts.username else "default",
            password=unquote(parts.password) if parts.password else "",
        )
    raise ConfigError(
        f"invalid clickhouse.url: {url!r}; should start with chdb:// (embedded) or "
        "clickhouse:// (server, native protocol) (set TRACEPIPE_CLICKHOUSE_URL)"
    )


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, for messages and logs."""
    return re.sub(r"(clickhouse://[^:/@]*:)[^@]*@", r"\1***@", url)


def open_warehouse(config: ClickHouseConfig) -> Warehouse:
    """Open the backend `config.url` names (chDB embedded or a server over the native protocol),
    behind the fault injector when `config.fault_file` is set."""
    warehouse = _open_backend(config)
    if not config.fault_file:
        return warehouse
    from streams.warehouse.fault import FaultInjectingWarehouse

    return FaultInjectingWarehouse(warehouse, Path(config.fault_file))


def _open_backend(config: ClickHouseConfig) -> Warehouse:
    parsed = parse_url(config.url)
    if parsed.scheme == "chdb":
        from streams.warehouse.chdb_backend import ChdbWarehouse

        return ChdbWarehouse(parsed.path, url=config.url)
    from streams.warehouse.native_backend import NativeWarehouse

    return NativeWarehouse(
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        user=parsed.user,
        password=parsed.password,
        connect_timeout_s=config.connect_timeout_s,
        url=config.url,
    )


# ClickHouse type strings, parsed once per column so both backends convert values by type.

_CONTAINERS = frozenset({"Array", "Map", "Nullable", "LowCardinality", "Tuple", "Nested"})
_NAMED_ELEMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*|`[^`]*`)\s+(\S.*)$", re.DOTALL)


@dataclass(frozen=True)
class ChType:
    """A parsed ClickHouse type: `name`, nested types in `args` (containers), raw `params`."""

    name: str
    args: tuple[ChType, ...] = ()
    params: tuple[str, ...] = ()
    names: tuple[str, ...] = ()  # element names of a named Tuple

    @property
    def base(self) -> ChType:
        """The type with Nullable/LowCardinality wrappers removed."""
        t = self
        while t.name in ("Nullable", "LowCardinality") and t.args:
            t = t.args[0]
        return t


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    quote = ""
    start = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'`\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
        i += 1
    tail = text[start:].strip()
    if tail:
        parts.append(tail)
    return parts


def parse_type(text: str) -> ChType:
    """Parse a ClickHouse type string such as ``Map(LowCardinality(String), String)``."""
    text = text.strip()
    paren = text.find("(")
    if paren < 0 or not text.endswith(")"):
        return ChType(name=text)
    name = text[:paren].strip()
    inner = _split_top_level(text[paren + 1 : -1])
    if name not in _CONTAINERS:
        return ChType(name=name, params=tuple(inner))
    names: list[str] = []
    args: list[ChType] = []
    for part in inner:
        match = _NAMED_ELEMENT.match(part) if name in ("Tuple", "Nested") else None
        if match and not match.group(1).startswith(("Nullable", "LowCardinality")):
            names.append(match.group(1).strip("`"))
            args.append(parse_type(match.group(2)))
        else:
            args.append(parse_type(part))
    return ChType(name=name, args=tuple(args), names=tuple(names))


def split_table_name(table: str) -> tuple[str | None, str]:
    """``db.table`` -> (db, table); ``table`` -> (None, table). Backticks are removed."""
    match = re.fullmatch(r"`?([^`.]+)`?\.`?([^`]+)`?", table)
    if match:
        return match.group(1), match.group(2)
    return None, table.strip("`")


def quote_identifier(name: str) -> str:
    """A column or table name in backticks (``Events.Timestamp`` stays one identifier)."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_string(value: str) -> str:
    """A string literal for SQL text: the one way a value enters SQL (tested with hostile ones).
    NUL is written as an escape, so the SQL text never holds one (user SQL with NUL is refused)."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\x00", "\\0")
    return "'" + escaped + "'"


__all__ = [
    "DEFAULT_CHDB_URL",
    "SPAN_KIND_VALUES",
    "STATUS_CODE_VALUES",
    "ChType",
    "Warehouse",
    "WarehouseURL",
    "open_warehouse",
    "parse_type",
    "parse_url",
    "quote_identifier",
    "quote_string",
    "redact_url",
    "split_table_name",
]
