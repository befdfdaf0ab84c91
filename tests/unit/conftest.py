"""Fixtures shared by unit tests that need the real embedded ClickHouse engine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streams.config import ClickHouseConfig
from streams.sink.alerts import ALERTS
from streams.sink.windows import EDGES, LATENCY
from streams.warehouse import Warehouse, open_warehouse
from streams.warehouse.migrate import migrate


@pytest.fixture(scope="module")
def chdb_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh chDB data path for one test module."""
    return f"chdb://{tmp_path_factory.mktemp('chdb')}"


@pytest.fixture(scope="module")
def migrated_warehouse(chdb_url: str) -> Iterator[Warehouse]:
    """A chDB warehouse with every migration applied, shared by one test module."""
    opened = open_warehouse(ClickHouseConfig(url=chdb_url))
    try:
        migrate(opened, ttl_days=7)
        yield opened
    finally:
        opened.close()


@pytest.fixture
def window_tables(migrated_warehouse: Warehouse) -> Warehouse:
    """The migrated warehouse with tracepipe_latency and tracepipe_edges emptied."""
    migrated_warehouse.execute(f"TRUNCATE TABLE {LATENCY}")
    migrated_warehouse.execute(f"TRUNCATE TABLE {EDGES}")
    return migrated_warehouse


@pytest.fixture
def alert_table(migrated_warehouse: Warehouse) -> Warehouse:
    """The migrated warehouse with tracepipe_alerts emptied."""
    migrated_warehouse.execute(f"TRUNCATE TABLE {ALERTS}")
    return migrated_warehouse
