"""The fault injector refuses inserts (storing nothing) exactly while its file exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.config import ClickHouseConfig
from streams.errors import WarehouseError
from streams.warehouse import open_warehouse
from streams.warehouse.fault import FaultInjectingWarehouse


def test_inserts_fail_only_while_the_fault_file_exists(tmp_path: Path) -> None:
    fault = tmp_path / "clickhouse-down"
    warehouse = open_warehouse(
        ClickHouseConfig(url=f"chdb://{tmp_path / 'chdb'}", fault_file=str(fault))
    )
    try:
        assert isinstance(warehouse, FaultInjectingWarehouse)
        warehouse.execute("CREATE TABLE t (id UInt64) ENGINE = MergeTree ORDER BY id")
        assert warehouse.insert("t", ["id"], [(1,)]) == 1
        fault.touch()
        with pytest.raises(WarehouseError, match="remove it"):
            warehouse.insert("t", ["id"], [(2,)])
        # Reads keep working during the outage (probes, web view).
        assert warehouse.query("SELECT count() FROM t") == [(1,)]
        fault.unlink()
        assert warehouse.insert("t", ["id"], [(3,)]) == 1
        assert warehouse.query("SELECT groupArray(id) FROM (SELECT id FROM t ORDER BY id)") == [
            ([1, 3],)
        ]
    finally:
        warehouse.close()


def test_lose_ack_stores_the_rows_then_fails(tmp_path: Path) -> None:
    fault = tmp_path / "clickhouse-down"
    warehouse = open_warehouse(
        ClickHouseConfig(url=f"chdb://{tmp_path / 'chdb'}", fault_file=str(fault))
    )
    try:
        warehouse.execute("CREATE TABLE t (id UInt64) ENGINE = MergeTree ORDER BY id")
        fault.write_text("lose-ack\n")
        with pytest.raises(WarehouseError, match="lose-ack"):
            warehouse.insert("t", ["id"], [(1,)])
        fault.write_text("lost-ack")
        with pytest.raises(WarehouseError, match="write 'refuse'"):
            warehouse.insert("t", ["id"], [(2,)])
        # The first insert was stored despite its error: a retry would store it twice.
        assert warehouse.query("SELECT count() FROM t") == [(1,)]
    finally:
        warehouse.close()


def test_no_fault_file_means_no_wrapper(tmp_path: Path) -> None:
    warehouse = open_warehouse(ClickHouseConfig(url=f"chdb://{tmp_path / 'chdb'}"))
    try:
        assert not isinstance(warehouse, FaultInjectingWarehouse)
    finally:
        warehouse.close()
