"""The warehouse writer retries failed inserts with backoff until the rows are stored."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from streams.config import SpanSinkConfig
from streams.errors import WarehouseError
from streams.model.span import make_span
from streams.sink.spans import OTEL_TRACES, OTEL_TRACES_COLUMNS, span_row
from streams.sink.writer import WarehouseWriter
from streams.telemetry import Counters


class FlakyWarehouse:
    """Fails the first `failures` inserts, then stores rows in memory."""

    url = "memory://"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.rows: list[Sequence[Any]] = []
        self.closed = False

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        if self.failures:
            self.failures -= 1
            raise WarehouseError("connection refused")
        self.rows.extend(rows)
        return len(rows)

    def close(self) -> None:
        self.closed = True


def test_writer_retries_with_backoff_until_stored() -> None:
    warehouse = FlakyWarehouse(failures=4)
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    counters = Counters()
    config = SpanSinkConfig(retry_initial_backoff_ms=100, retry_max_backoff_ms=300)
    writer = WarehouseWriter(lambda: warehouse, config, counters, sleep=fake_sleep)  # type: ignore[arg-type,return-value]
    spans = [make_span("a" * 32, f"{i:016x}", "op", "svc", 1, 2) for i in range(3)]
    rows = [span_row(s) for s in spans]
    written = asyncio.run(writer.write_rows(OTEL_TRACES, OTEL_TRACES_COLUMNS, rows))
    writer.close()
    assert written == 3 and len(warehouse.rows) == 3
    assert sleeps == [0.1, 0.2, 0.3, 0.3]
    assert counters.total("tracepipe_sink_insert_failures_total") == 4
    assert counters.value("tracepipe_sink_rows_written_total", table=OTEL_TRACES) == 3
    assert warehouse.closed
