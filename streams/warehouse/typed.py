"""What both warehouse backends share: decoded SELECT results and cached column types."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from streams.errors import WarehouseError
from streams.warehouse import ChType, parse_type, quote_string, split_table_name
from streams.warehouse.readonly import (
    engine_reason,
    is_readonly_refusal,
    read_only_statement,
    refused_by_readonly,
)

Converter = Callable[[Any], Any]

INSERT_SETTINGS: dict[str, int] = {"optimize_on_insert": 0}
"""Settings of every insert, on both backends. optimize_on_insert=0: ClickHouse would run each
inserted block through its table engine's merge (ReplacingMergeTree: copy every row, Maps and
Nested included, to collapse copies within the block), which doubled the CPU of an otel_traces
insert (bench/README.md, session 11). Copies are collapsed by background merges and FINAL
either way: every reader already handles copies in different blocks."""


def insert_settings_clause() -> str:
    """INSERT_SETTINGS as the `SETTINGS ...` clause of an INSERT statement."""
    return "SETTINGS " + ", ".join(f"{k} = {v}" for k, v in INSERT_SETTINGS.items())


def container_converter(
    t: ChType, element: Callable[[ChType], Converter | None]
) -> Converter | None:
    """For Array and Map, a converter applying `element`'s converters to their parts; None when
    no part needs converting, or `t` is neither."""
    if t.name == "Array":
        item = element(t.args[0])
        if item is None:
            return None
        return lambda v: [item(x) for x in v]
    if t.name == "Map":
        key, val = element(t.args[0]), element(t.args[1])
        if key is None and val is None:
            return None
        k = key or (lambda x: x)
        w = val or (lambda x: x)
        return lambda v: {k(a): w(b) for a, b in v.items()}
    return None


def sql_preview(sql: str, limit: int = 300) -> str:
    """A statement on one line without comments, cut at `limit` characters, for messages."""
    code = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    flat = " ".join(" ".join(code).split())
    return flat if len(flat) <= limit else flat[:limit] + " ..."


class TypedWarehouse(ABC):
    """A backend that returns SELECT rows decoded by column type (conventions in the package)."""

    def __init__(self) -> None:
        self._types: dict[str, dict[str, ChType]] = {}

    @abstractmethod
    def _select(self, sql: str, readonly: bool = False) -> tuple[list[str], list[list[Any]]]:
        """Column names and rows, values already decoded to Python types; `readonly` runs the
        statement under ClickHouse's readonly=1."""

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Run a SELECT; rows as tuples of Python values (conventions in streams.warehouse)."""
        return [tuple(row) for row in self._select(sql)[1]]

    def query_dicts(self, sql: str) -> list[dict[str, Any]]:
        """Run a SELECT; rows as dicts keyed by column name."""
        names, rows = self._select(sql)
        return [dict(zip(names, row, strict=True)) for row in rows]

    def query_readonly(self, sql: str) -> list[dict[str, Any]]:
        """Run one user statement: checked by `read_only_statement`, then under readonly=1; rows
        as dicts. A refusal is a one-line QueryRefusedError, an engine error a one-line
        WarehouseError."""
        statement = read_only_statement(sql)
        try:
            names, rows = self._select(statement, readonly=True)
        except WarehouseError as err:
            message = str(err)
            if is_readonly_refusal(message):
                raise refused_by_readonly(message) from err
            if "DB::Exception" in message:
                raise WarehouseError(f"query failed: {engine_reason(message)}") from err
            raise
        return [dict(zip(names, row, strict=True)) for row in rows]

    def _column_types(self, table: str) -> dict[str, ChType]:
        """The parsed types of a table's columns, read once and cached until the next DDL."""
        cached = self._types.get(table)
        if cached is not None:
            return cached
        database, name = split_table_name(table)
        where_db = quote_string(database) if database else "currentDatabase()"
        _, rows = self._select(
            "SELECT name, type FROM system.columns "
            f"WHERE database = {where_db} AND table = {quote_string(name)}"
        )
        types = {str(n): parse_type(str(t)) for n, t in rows}
        if not types:
            raise WarehouseError(
                f"cannot insert into {table}: no such table (run tracepipe db migrate first?)"
            )
        self._types[table] = types
        return types
