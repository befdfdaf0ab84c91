"""The embedded backend: chDB (ClickHouse in process) with its data under one directory.

A process can have one chDB data path open at a time, and a path belongs to one process
(the engine locks it, and before it `streams.warehouse.owner` claims it in the owner's name).
Several ChdbWarehouse objects on the same path share the engine; the locks are released when
the last of them is closed.

Inserts go as one Arrow stream per batch (``send_insert(..., "ArrowStream")``): measured on
otel_traces-shaped rows it was the fastest of JSONEachRow, JSONCompactEachRow, RowBinary
built in Python and the Python() table function, and Arrow carries DateTime64, Map and
Nested columns with their types.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import accumulate, chain
from pathlib import Path
from typing import Any

from streams.errors import MissingDependencyError, WarehouseError
from streams.paths import resolve_path
from streams.warehouse import ChType, parse_type, quote_identifier
from streams.warehouse.owner import claim_data_path
from streams.warehouse.readonly import READONLY_SETTING
from streams.warehouse.typed import (
    Converter,
    TypedWarehouse,
    container_converter,
    insert_settings_clause,
    sql_preview,
)

try:
    import pyarrow as pa  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - chdb depends on pyarrow
    pa = None


# Output settings that make JSON results exact: 64-bit ints as numbers, DateTime(64) as
# unix seconds (no session time zone involved), decimals and nan/inf quoted.
# Set once per connection so callers' SQL is sent unchanged (it may have its own SETTINGS).
_SESSION_SETTINGS = (
    "SET date_time_output_format = 'unix_timestamp', "
    "output_format_json_quote_64bit_integers = 0, "
    "output_format_json_quote_decimals = 1, "
    "output_format_json_quote_denormals = 1, "
    "output_format_json_named_tuples_as_objects = 0"
)

# User SQL runs on a second connection (its own session on the same engine) fixed read-only,
# so the writers' connection keeps writing. chDB takes settings per session or in a statement's
# SETTINGS clause, which a user's statement could already have, so per session it is.
_READONLY_SESSION = f"SET {READONLY_SETTING} = 1"

_open_paths: dict[str, int] = {}
_open_lock = threading.Lock()


def _import_chdb() -> Any:
    try:
        import chdb
    except ImportError as err:
        raise MissingDependencyError(
            "the embedded ClickHouse backend needs chdb: pip install 'chdb>=4,<5'"
        ) from err
    return chdb


class ChdbWarehouse(TypedWarehouse):
    """A Warehouse on chDB, the embedded ClickHouse engine, with data under `path`."""

    def __init__(self, path: str | Path, url: str | None = None) -> None:
        chdb = _import_chdb()
        if pa is None:  # pragma: no cover
            raise MissingDependencyError("the chDB backend needs pyarrow: pip install pyarrow")
        self.path = str(resolve_path(str(path)).resolve())
        self.url = url or f"chdb://{self.path}"
        # Re-entrant: insert holds it while reading column types through _select.
        self._lock = threading.RLock()
        self._readonly_conn: Any = None
        super().__init__()
        Path(self.path).mkdir(parents=True, exist_ok=True)
        with _open_lock:
            others = [p for p, n in _open_paths.items() if n > 0 and p != self.path]
            if others:
                raise WarehouseError(
                    f"cannot open chDB data path {self.path}: this process already has "
                    f"{others[0]} open, and chDB allows one data path per process; close that "
                    "warehouse first"
                )
            # Before the engine: a path another process owns is refused naming that process.
            self._claim = claim_data_path(self.path)
            try:
                self._conn: Any = chdb.connect(self.path)
            except Exception as err:
                self._claim.release()
                raise WarehouseError(
                    f"cannot open chDB data path {self.path}: {err}. A data path belongs to one "
                    "process at a time: if a tracepipe worker (or another process) is using it, "
                    "go through the worker's HTTP API or stop it, or use another path"
                ) from err
            _open_paths[self.path] = _open_paths.get(self.path, 0) + 1
        try:
            self._run(_SESSION_SETTINGS, "CSV")
        except WarehouseError:
            self.close()
            raise

    def _run(self, sql: str, fmt: str, readonly: bool = False) -> Any:
        if self._conn is None:
            raise WarehouseError(f"chDB warehouse {self.path} is closed")
        conn = self._readonly_session() if readonly else self._conn
        try:
            return conn.query(sql, fmt)
        except Exception as err:
            raise WarehouseError(f"chDB query failed: {err}\n  in: {sql_preview(sql)}") from err

    def _readonly_session(self) -> Any:
        """The read-only connection, opened on first use (a session of the same engine)."""
        if self._readonly_conn is None:
            try:
                conn = _import_chdb().connect(self.path)
            except Exception as err:
                raise WarehouseError(f"cannot open a read-only chDB session: {err}") from err
            try:
                conn.query(_SESSION_SETTINGS, "CSV")
                conn.query(_READONLY_SESSION, "CSV")
            except Exception as err:
                conn.close()
                raise WarehouseError(f"cannot make a chDB session read-only: {err}") from err
            self._readonly_conn = conn
        return self._readonly_conn

    def execute(self, sql: str) -> None:
        """Run a statement that returns no rows (DDL, commands)."""
        with self._lock:
            self._run(sql, "CSV")
            # DDL may change a table's columns; forget what we know about them.
            self._types.clear()

    def _select(self, sql: str, readonly: bool = False) -> tuple[list[str], list[list[Any]]]:
        with self._lock:
            result = self._run(
                sql.strip().rstrip(";"), "JSONCompactEachRowWithNamesAndTypes", readonly
            )
        text = result.bytes().decode("utf-8")
        lines = [line for line in text.split("\n") if line]
        if len(lines) < 2:
            return [], []
        names: list[str] = json.loads(lines[0])
        decoders = [_json_decoder(parse_type(t)) for t in json.loads(lines[1])]
        rows: list[list[Any]] = []
        for line in lines[2:]:
            row = json.loads(line)
            for i, decode in enumerate(decoders):
                if decode is not None:
                    row[i] = decode(row[i])
            rows.append(row)
        return names, rows

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Insert rows (values in `columns` order) as one Arrow stream; return rows written."""
        if not rows:
            return 0
        with self._lock:
            if self._conn is None:
                raise WarehouseError(f"chDB warehouse {self.path} is closed")
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
            try:
                arrays = [
                    arrow_array(types[c], list(values))
                    for c, values in zip(columns, zip(*rows, strict=True), strict=True)
                ]
                batch = pa.Table.from_arrays(arrays, names=list(columns))
            except (TypeError, ValueError, OverflowError, pa.ArrowException) as err:
                raise WarehouseError(
                    f"cannot insert into {table}: a value does not fit its column type: {err}"
                ) from err
            self._send_arrow(table, batch)
        return len(rows)

    def insert_arrow(self, table: str, data: Any) -> int:
        """Insert a pyarrow Table (column names = the table's) as one Arrow stream."""
        if not data.num_rows:
            return 0
        with self._lock:
            if self._conn is None:
                raise WarehouseError(f"chDB warehouse {self.path} is closed")
            types = self._column_types(table)
            unknown = [c for c in data.column_names if c not in types]
            if unknown:
                raise WarehouseError(
                    f"cannot insert into {table}: unknown column(s) {', '.join(unknown)}"
                )
            self._send_arrow(table, data)
        return int(data.num_rows)

    def _send_arrow(self, table: str, batch: Any) -> None:
        assert self._conn is not None
        sink = io.BytesIO()
        try:
            with pa.ipc.new_stream(sink, batch.schema) as writer:
                writer.write_table(batch)
        except (TypeError, ValueError, OverflowError, pa.ArrowException) as err:
            raise WarehouseError(f"cannot insert into {table}: {err}") from err
        column_list = ", ".join(quote_identifier(c) for c in batch.column_names)
        try:
            with self._conn.send_insert(
                f"INSERT INTO {table} ({column_list}) {insert_settings_clause()}", "ArrowStream"
            ) as inserter:
                inserter.append(sink.getvalue())
                inserter.finish()
        except Exception as err:
            raise WarehouseError(f"chDB insert into {table} failed: {err}") from err

    def close(self) -> None:
        """Close the connection; the data path is unlocked once every warehouse on it is closed."""
        with self._lock:
            if self._conn is None:
                return
            conn, self._conn = self._conn, None
            readonly, self._readonly_conn = self._readonly_conn, None
            with _open_lock:
                _open_paths[self.path] = _open_paths.get(self.path, 1) - 1
                if _open_paths[self.path] <= 0:
                    del _open_paths[self.path]
                try:
                    if readonly is not None:
                        readonly.close()
                    conn.close()
                except Exception as err:
                    raise WarehouseError(
                        f"closing chDB data path {self.path} failed: {err}"
                    ) from err
                finally:
                    self._claim.release()

    def __enter__(self) -> ChdbWarehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ChdbWarehouse({self.path!r})"


# Query side: JSON values (with _SESSION_SETTINGS) -> Python values by ClickHouse type.


def _unix_to_ns(value: Any) -> int:
    text = str(value)
    negative = text.startswith("-")
    whole, _, frac = text.lstrip("-").partition(".")
    ns = int(whole) * 1_000_000_000 + int((frac + "000000000")[:9])
    return -ns if negative else ns


def _json_decoder(t: ChType) -> Converter | None:
    """A function turning one JSON value of type `t` into its Python value; None: unchanged."""
    name = t.name
    if name in ("Nullable", "LowCardinality"):
        inner = _json_decoder(t.args[0])
        if inner is None:
            return None
        return lambda v: None if v is None else inner(v)
    if name == "DateTime64":
        return lambda v: None if v is None else _unix_to_ns(v)
    if name == "DateTime":
        return lambda v: None if v is None else datetime.fromtimestamp(int(v), tz=UTC)
    if name in ("Date", "Date32"):
        return lambda v: None if v is None else date.fromisoformat(v)
    if name.startswith(("Int", "UInt")):
        return lambda v: v if v is None or isinstance(v, int) else int(v)
    if name.startswith(("Float", "BFloat")):
        return lambda v: v if v is None or isinstance(v, float) else float(v)
    if name.startswith("Decimal"):
        return lambda v: None if v is None else Decimal(str(v))
    if name in ("Array", "Map"):
        return container_converter(t, _json_decoder)
    if name == "Tuple":
        items = [_json_decoder(a) or (lambda x: x) for a in t.args]
        return lambda v: tuple(f(x) for f, x in zip(items, v, strict=False))
    return None


# Insert side: Python values (conventions in streams.warehouse) -> Arrow arrays by type.

_ARROW_INTS: dict[str, Any] = {}
if pa is not None:
    _ARROW_INTS = {
        "Int8": pa.int8(), "Int16": pa.int16(), "Int32": pa.int32(), "Int64": pa.int64(),
        "UInt8": pa.uint8(), "UInt16": pa.uint16(), "UInt32": pa.uint32(),
        "UInt64": pa.uint64(), "Float32": pa.float32(), "Float64": pa.float64(),
        "Bool": pa.bool_(),
    }  # fmt: skip
_STRINGS = ("String", "FixedString", "Enum8", "Enum16", "UUID", "IPv4", "IPv6")


def _offsets(lists: Sequence[Any]) -> Any:
    return pa.array(list(accumulate((len(x) for x in lists), initial=0)), type=pa.int32())


def _seconds(value: Any) -> Any:
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware datetime or unix seconds")
        return int(value.timestamp())
    raise TypeError(f"DateTime takes int unix seconds or an aware datetime, not {value!r}")


def arrow_array(t: ChType, values: list[Any]) -> Any:
    """An Arrow array holding `values` for a ClickHouse column of type `t`."""
    name = t.name
    if name in ("Nullable", "LowCardinality"):
        return arrow_array(t.args[0], values)
    if name == "DateTime64":
        return pa.array(values, type=pa.int64()).cast(pa.timestamp("ns", tz="UTC"))
    if name == "DateTime":
        return pa.array([_seconds(v) for v in values], type=pa.int64()).cast(
            pa.timestamp("s", tz="UTC")
        )
    if name in ("Date", "Date32"):
        return pa.array(values, type=pa.date32())
    arrow_type = _ARROW_INTS.get(name)
    if arrow_type is not None:
        return pa.array(values, type=arrow_type)
    if name in _STRINGS:
        try:
            return pa.array(values, type=pa.string())
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            # Only off the fast path: bytes go as binary, anything else as its str().
            if any(isinstance(v, bytes) for v in values):
                return pa.array(values, type=pa.binary())
            return pa.array([v if v is None else str(v) for v in values], type=pa.string())
    if name == "Array":
        flat = list(chain.from_iterable(values))
        return pa.ListArray.from_arrays(_offsets(values), arrow_array(t.args[0], flat))
    if name == "Map":
        keys = list(chain.from_iterable(d.keys() for d in values))
        vals = list(chain.from_iterable(d.values() for d in values))
        return pa.MapArray.from_arrays(
            _offsets(values), arrow_array(t.args[0], keys), arrow_array(t.args[1], vals)
        )
    if name == "Tuple":
        fields = [arrow_array(a, [v[i] for v in values]) for i, a in enumerate(t.args)]
        names = list(t.names) if t.names else [str(i + 1) for i in range(len(fields))]
        return pa.StructArray.from_arrays(fields, names=names)
    # Decimal, Int128/256 and the rest: let Arrow infer from the Python values.
    return pa.array(values)
