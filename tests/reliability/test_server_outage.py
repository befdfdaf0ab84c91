"""A ClickHouse server stopped mid-stream and restarted (the server backend, on Debian's
clickhouse-server): the writer keeps retrying without raising, counts its failures, and once the
server is back every batch is stored exactly once.

Writer-level, not a whole worker: the packaged server (18.16) cannot run tracepipe's DDL
(DateTime64, Map, TTL), so the rows go to a plain table, through the same `WarehouseWriter` and
native backend a worker uses."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.config import ClickHouseConfig, SpanSinkConfig
from streams.sink.writer import WarehouseWriter
from streams.telemetry import Counters
from streams.warehouse import open_warehouse
from tests.integration.warehouse.conftest import LocalServer, new_local_server

pytestmark = pytest.mark.integration

BATCHES = 60
ROWS_PER_BATCH = 500
STOP_AFTER_BATCH = 10
DOWN_S = 15.0
TABLE = "outage_rows"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalServer]:
    started = new_local_server(tmp_path / "server")
    started.start()
    try:
        yield started
    finally:
        started.stop()


def test_server_stopped_mid_stream_loses_and_duplicates_nothing(server: LocalServer) -> None:
    counters = Counters()
    config = SpanSinkConfig(retry_initial_backoff_ms=100, retry_max_backoff_ms=1000)
    writer = WarehouseWriter(
        lambda: open_warehouse(ClickHouseConfig(url=server.url, connect_timeout_s=1)),
        config,
        counters,
    )
    outage: dict[str, float] = {}
    restarter = threading.Thread(target=lambda: stop_and_restart(), daemon=True)

    def stop_and_restart() -> None:
        server.stop()
        outage["stopped"] = time.monotonic()
        time.sleep(DOWN_S)
        # Before start(), which returns only once the server answers: a write waiting through
        # the outage can finish before start() does.
        outage["restarting"] = time.monotonic()
        server.start()
        outage["restarted"] = time.monotonic()

    async def stream() -> list[tuple[float, float]]:
        await writer.run_on_writer(
            lambda w: w.execute(
                f"CREATE TABLE {TABLE} (batch UInt32, seq UInt32) "
                "ENGINE = MergeTree() ORDER BY (batch, seq)"
            )
        )
        spans: list[tuple[float, float]] = []
        for batch in range(BATCHES):
            if batch == STOP_AFTER_BATCH:
                restarter.start()
                await asyncio.sleep(0.5)  # a few inserts meet the stopping server
            rows = [(batch, seq) for seq in range(ROWS_PER_BATCH)]
            started = time.monotonic()
            assert await writer.write_rows(TABLE, ["batch", "seq"], rows) == ROWS_PER_BATCH
            spans.append((started, time.monotonic()))
        return spans

    try:
        writes = asyncio.run(stream())
        restarter.join(60)  # the last writes can finish before start() returns
        stored = asyncio.run(
            writer.run_on_writer(
                lambda w: w.query_dicts(
                    f"SELECT count() AS rows, uniqExact(batch, seq) AS distinct_rows, "
                    f"uniqExact(batch) AS batches FROM {TABLE}"
                )
            )
        )[0]
    finally:
        writer.close()
    failures = counters.total("tracepipe_sink_insert_failures_total")
    print(
        f"\nserver down {outage['restarted'] - outage['stopped']:.1f}s; {failures} failed inserts "
        f"retried; slowest write_rows {max(end - start for start, end in writes):.1f}s; "
        f"stored {stored}"
    )
    assert "restarted" in outage
    # The writer waited through the outage instead of raising: a write begun while the server
    # was down returned only after it was back; its failed attempts were counted.
    assert any(start < outage["restarting"] < end for start, end in writes)
    assert failures > 0
    total = BATCHES * ROWS_PER_BATCH
    assert stored == {"rows": total, "distinct_rows": total, "batches": BATCHES}
