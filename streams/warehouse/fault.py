"""Fault injection at the warehouse boundary: inserts fail while a named file exists.

Enabled only by `clickhouse.fault_file` (`TRACEPIPE_CLICKHOUSE_FAULT_FILE`). A test (or an
operator rehearsing an outage) creates the file to start a ClickHouse write outage and removes it
to end one, without reaching into the worker process: the reliability suite uses it to show that
consumption pauses, retries are counted and nothing is lost or stored twice.

The file's content picks the fault: empty (or `refuse`) fails each insert before it stores
anything, like a server that is down; `lose-ack` stores the rows and then fails, like a
connection that breaks after the server committed the insert (the retry stores them again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from streams.errors import WarehouseError
from streams.warehouse import Warehouse

log = logging.getLogger("tracepipe.warehouse")

REFUSE = "refuse"
LOSE_ACK = "lose-ack"
MODES = (REFUSE, LOSE_ACK)


class FaultInjectingWarehouse:
    """A `Warehouse` whose inserts raise `WarehouseError` while `fault_file` exists (storing
    nothing, or with `lose-ack` in it after storing); queries and commands pass through, so
    probes and the web view still answer."""

    def __init__(self, inner: Warehouse, fault_file: Path) -> None:
        self._inner = inner
        self.fault_file = fault_file
        self.url = inner.url
        log.warning("fault injection is on: inserts fail while %s exists", fault_file)

    def execute(self, sql: str) -> None:
        """Run a statement on the wrapped warehouse."""
        self._inner.execute(sql)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Run a SELECT on the wrapped warehouse."""
        return self._inner.query(sql)

    def query_dicts(self, sql: str) -> list[dict[str, Any]]:
        """Run a SELECT on the wrapped warehouse; rows as dicts."""
        return self._inner.query_dicts(sql)

    def query_readonly(self, sql: str) -> list[dict[str, Any]]:
        """Run a user's statement read-only on the wrapped warehouse."""
        return self._inner.query_readonly(sql)

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Insert through the wrapped warehouse; while the fault file exists, fail as it says."""
        return self._faulty(table, lambda: self._inner.insert(table, columns, rows))

    def insert_arrow(self, table: str, data: Any) -> int:
        """Insert an Arrow table through the wrapped warehouse, failing as `insert` does."""
        return self._faulty(table, lambda: self._inner.insert_arrow(table, data))

    def _faulty(self, table: str, insert: Callable[[], int]) -> int:
        try:
            mode = self.fault_file.read_text().strip() or REFUSE
        except FileNotFoundError:
            return insert()
        if mode not in MODES:
            raise WarehouseError(
                f"injected fault: {self.fault_file} says {mode!r}; write {REFUSE!r} (or nothing) "
                f"or {LOSE_ACK!r} in it"
            )
        if mode == LOSE_ACK:
            insert()
        raise WarehouseError(
            f"injected fault ({mode}): insert into {table} failed while {self.fault_file} "
            "exists (remove it, or unset clickhouse.fault_file, to end the outage)"
        )

    def close(self) -> None:
        """Close the wrapped warehouse."""
        self._inner.close()
