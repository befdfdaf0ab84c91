"""WarehouseWriter: batches of rows into ClickHouse on one thread, retried until stored.

Nothing here imports Faust or Kafka; the agents hand it rows and wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from streams.config import SpanSinkConfig
from streams.errors import WarehouseError
from streams.telemetry import Counters
from streams.warehouse import Warehouse

log = logging.getLogger("tracepipe.sink")


class WarehouseWriter:
    """Writes row batches to ClickHouse tables on one dedicated thread, retrying until stored.

    A failed insert is retried with exponential backoff for as long as it takes: the caller does
    not get control back (and so does not acknowledge the batch's offsets) until it is stored.
    """

    def __init__(
        self,
        open_warehouse: Callable[[], Warehouse],
        config: SpanSinkConfig,
        counters: Counters,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._open_warehouse = open_warehouse
        self._warehouse: Warehouse | None = None
        self._config = config
        self._counters = counters
        self._sleep = sleep
        # chDB is single-threaded per process; one writer thread also keeps the event loop free.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tracepipe-sink")
        counters.describe("tracepipe_sink_rows_written_total", "Rows stored, by table.")
        counters.describe("tracepipe_sink_insert_failures_total", "Failed inserts (each retried).")

    def warehouse(self) -> Warehouse:
        """The open warehouse, opening it on first use (called on the writer thread)."""
        if self._warehouse is None:
            self._warehouse = self._open_warehouse()
        return self._warehouse

    def _insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        try:
            return self.warehouse().insert(table, columns, rows)
        except WarehouseError:
            raise
        except Exception as err:
            raise WarehouseError(f"insert into {table} failed: {err}") from err

    async def run_on_writer(self, fn: Callable[[Warehouse], Any]) -> Any:
        """Run `fn(warehouse)` on the writer thread (queries share the engine with inserts)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self.warehouse()))

    async def write_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> int:
        """Store the rows in `table`; return how many were written. Retries until it succeeds."""
        if not rows:
            return 0
        return await self._store(table, len(rows), self._insert, table, columns, rows)

    async def write_arrow(self, table: str, data: Any) -> int:
        """Store a pyarrow Table (column names = `table`'s); retries until it succeeds."""
        if not data.num_rows:
            return 0
        return await self._store(table, data.num_rows, self._insert_arrow, table, data)

    def _insert_arrow(self, table: str, data: Any) -> int:
        try:
            return self.warehouse().insert_arrow(table, data)
        except WarehouseError:
            raise
        except Exception as err:
            raise WarehouseError(f"insert into {table} failed: {err}") from err

    async def _store(self, table: str, count: int, insert: Callable[..., int], *args: Any) -> int:
        loop = asyncio.get_running_loop()
        backoff_s = self._config.retry_initial_backoff_ms / 1000
        attempt = 0
        while True:
            attempt += 1
            try:
                written: int = await loop.run_in_executor(self._executor, insert, *args)
            except WarehouseError as err:
                self._counters.inc("tracepipe_sink_insert_failures_total", table=table)
                log.warning(
                    "insert of %d rows into %s failed (attempt %d), retrying in %.1fs: %s",
                    count,
                    table,
                    attempt,
                    backoff_s,
                    err,
                )
                await self._sleep(backoff_s)
                backoff_s = min(backoff_s * 2, self._config.retry_max_backoff_ms / 1000)
                continue
            self._counters.inc("tracepipe_sink_rows_written_total", written, table=table)
            return written

    def close(self) -> None:
        """Close the warehouse on the writer thread and stop the thread."""

        def _close() -> None:
            if self._warehouse is not None:
                self._warehouse.close()
                self._warehouse = None

        self._executor.submit(_close).result()
        self._executor.shutdown(wait=True)
