"""The Faust app takes its backpressure bounds from the worker settings; a warehouse that
fails its migrations is closed before the writer opens another."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.app import _open_migrated, faust_app
from streams.config import ClickHouseConfig, Settings, WorkerConfig
from streams.errors import WarehouseError
from streams.warehouse import Warehouse, open_warehouse


def test_backpressure_knobs_reach_faust() -> None:
    settings = Settings(
        worker=WorkerConfig(stream_buffer_maxsize=256, consumer_max_fetch_bytes=262_144)
    )
    conf = faust_app(settings).conf
    assert conf.stream_buffer_maxsize == 256
    assert conf.consumer_max_fetch_size == 262_144


def test_the_session_timeout_reaches_faust_with_heartbeats_a_third_of_it() -> None:
    conf = faust_app(Settings()).conf
    assert (conf.broker_session_timeout, conf.broker_heartbeat_interval) == (10.0, 3.0)
    short = faust_app(Settings(worker=WorkerConfig(session_timeout_ms=6_000))).conf
    assert (short.broker_session_timeout, short.broker_heartbeat_interval) == (6.0, 2.0)
    long = faust_app(Settings(worker=WorkerConfig(session_timeout_ms=45_000))).conf
    assert (long.broker_session_timeout, long.broker_heartbeat_interval) == (45.0, 3.0)


def test_a_warehouse_that_fails_its_migrations_is_closed(tmp_path: Path) -> None:
    # ClickHouse failing at the worker's first insert fails the migrations; the writer opens
    # again on its next attempt, so each failed open must release its connection.
    fault = tmp_path / "clickhouse-down"
    fault.touch()
    settings = Settings(
        clickhouse=ClickHouseConfig(url=f"chdb://{tmp_path / 'chdb'}", fault_file=str(fault))
    )
    opened: list[Warehouse] = []

    def recording_open(config: ClickHouseConfig) -> Warehouse:
        opened.append(open_warehouse(config))
        return opened[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("streams.app.open_warehouse", recording_open)
        for _ in range(2):
            with pytest.raises(WarehouseError, match="injected fault"):
                _open_migrated(settings)
    assert len(opened) == 2
    for warehouse in opened:
        with pytest.raises(WarehouseError, match="closed"):
            warehouse.query("SELECT 1")
    fault.unlink()
    recovered = _open_migrated(settings)
    try:
        assert recovered.query("SELECT count() > 0 FROM tracepipe_schema_migrations") == [(1,)]
    finally:
        recovered.close()
