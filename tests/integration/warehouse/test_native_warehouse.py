"""The server backend on a real ClickHouse server (Debian's 18.16: plain tables, old syntax)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams.config import ClickHouseConfig
from streams.errors import QueryRefusedError, WarehouseError
from streams.warehouse import open_warehouse
from streams.warehouse.migrate import applied_versions, migrate
from streams.warehouse.native_backend import NativeWarehouse
from tests.integration.warehouse.conftest import LocalServer

pytestmark = pytest.mark.integration

CREATE = (
    "CREATE TABLE spans_plain (id UInt64, name String, at DateTime, tags Array(String), "
    "`Events.Name` Array(String), note Nullable(String)) ENGINE = MergeTree() ORDER BY id"
)
COLUMNS = ["id", "name", "at", "tags", "Events.Name", "note"]
AT = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def warehouse(database_url: str) -> Iterator[NativeWarehouse]:
    opened = open_warehouse(ClickHouseConfig(url=database_url, connect_timeout_s=5))
    assert isinstance(opened, NativeWarehouse)
    try:
        yield opened
    finally:
        opened.close()


class RecordingSleep:
    """time.sleep that remembers the backoffs it was asked for."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        time.sleep(seconds)


def test_insert_and_query_back(warehouse: NativeWarehouse) -> None:
    warehouse.execute(CREATE)
    rows = [
        (
            i,
            f"span-{i}",
            AT if i % 2 else int(AT.timestamp()) + i,
            ["a", "b"][: i % 3],
            [f"e{i}"],
            None if i % 5 else "five",
        )
        for i in range(2_000)
    ]
    assert warehouse.insert("spans_plain", COLUMNS, rows) == 2_000
    assert warehouse.query("SELECT count(), sum(length(tags)) FROM spans_plain") == [(2_000, 1_999)]
    back = warehouse.query_dicts("SELECT * FROM spans_plain WHERE id IN (0, 1) ORDER BY id")
    assert back == [
        {"id": 0, "name": "span-0", "at": AT, "tags": [], "Events.Name": ["e0"], "note": "five"},
        {"id": 1, "name": "span-1", "at": AT, "tags": ["a"], "Events.Name": ["e1"], "note": None},
    ]
    assert back[0]["at"].tzinfo is not None


def test_server_errors_are_not_retried(database_url: str) -> None:
    sleep = RecordingSleep()
    parts = database_url.split("/")
    host, port = parts[2].rsplit(":", 1)
    warehouse = NativeWarehouse(host, int(port), database=parts[3], attempts=4, sleep=sleep)
    try:
        with pytest.raises(WarehouseError, match="ClickHouse refused"):
            warehouse.query("SELECT * FROM no_such_table")
        with pytest.raises(WarehouseError, match="no such table"):
            warehouse.insert("no_such_table", ["x"], [[1]])
    finally:
        warehouse.close()
    assert sleep.calls == []


def test_user_sql_runs_under_readonly_and_the_writers_still_write(
    warehouse: NativeWarehouse,
) -> None:
    warehouse.execute(CREATE)
    # The server refuses table functions itself under readonly=1 (it ignores INTO OUTFILE,
    # which is refused before it is sent, like several statements).
    for sql, reason in [
        ("SELECT * FROM file('/etc/hostname', 'TSV', 'line String')", "readonly mode"),
        ("SELECT * FROM url('http://127.0.0.1:9/', 'TSV', 'line String')", "readonly mode"),
        ("SELECT 1 SETTINGS readonly = 0", "readonly mode"),
        ("SELECT 'x' INTO OUTFILE '/tmp/tracepipe-outfile' FORMAT CSV", "INTO OUTFILE"),
        ("SELECT 1; SELECT 2", "several statements"),
    ]:
        with pytest.raises(QueryRefusedError, match=reason) as refused:
            warehouse.query_readonly(sql)
        assert "\n" not in str(refused.value) and "Stack trace" not in str(refused.value)
    assert warehouse.insert("spans_plain", COLUMNS, [(1, "a", AT, [], [], None)]) == 1
    readonly = "SELECT value FROM system.settings WHERE name = 'readonly'"
    assert warehouse.query_readonly("SELECT id FROM spans_plain") == [{"id": 1}]
    assert warehouse.query_readonly(readonly) == [{"value": "1"}]
    assert warehouse.query_dicts(readonly) == [{"value": "0"}]


def test_migrations_are_recorded_on_the_server(warehouse: NativeWarehouse, tmp_path: Path) -> None:
    (tmp_path / "0001_plain.sql").write_text(
        "CREATE TABLE IF NOT EXISTS plain (x UInt8) ENGINE = MergeTree() ORDER BY x;\n"
    )
    (tmp_path / "0002_more.sql").write_text(
        "CREATE TABLE IF NOT EXISTS more (x UInt8) ENGINE = MergeTree() ORDER BY x;\n"
        "CREATE TABLE IF NOT EXISTS more_{ttl_days} (x UInt8) ENGINE = MergeTree() ORDER BY x;\n"
    )
    assert migrate(warehouse, 3, root=tmp_path) == ["0001_plain", "0002_more"]
    assert migrate(warehouse, 3, root=tmp_path) == []
    assert applied_versions(warehouse) == ["0001_plain", "0002_more"]
    tables = warehouse.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() "
        "AND name LIKE 'more%' ORDER BY name"
    )
    assert tables == [("more",), ("more_3",)]


def test_retries_until_the_server_comes_up(own_server: LocalServer) -> None:
    sleep = RecordingSleep()
    warehouse = NativeWarehouse(
        "127.0.0.1",
        own_server.tcp_port,
        connect_timeout_s=1,
        attempts=10,
        initial_backoff_s=0.25,
        max_backoff_s=2.0,
        sleep=sleep,
    )
    starter = threading.Timer(0.5, own_server.start)
    starter.start()
    try:
        assert warehouse.query("SELECT 1") == [(1,)]
    finally:
        starter.join()
        warehouse.close()
    assert sleep.calls and sleep.calls[0] == 0.25


def test_gives_up_after_bounded_retries(own_server: LocalServer) -> None:
    own_server.start()
    sleep = RecordingSleep()
    warehouse = NativeWarehouse(
        "127.0.0.1",
        own_server.tcp_port,
        connect_timeout_s=1,
        attempts=3,
        initial_backoff_s=0.1,
        max_backoff_s=1.0,
        sleep=sleep,
    )
    try:
        warehouse.execute(CREATE)
        assert warehouse.insert("spans_plain", COLUMNS, [(1, "x", AT, [], [], None)]) == 1
        own_server.stop()
        with pytest.raises(WarehouseError, match="after 3 attempts") as info:
            warehouse.insert("spans_plain", COLUMNS, [(2, "y", AT, [], [], None)])
        assert "check that the server is running" in str(info.value)
        assert sleep.calls == [0.1, 0.2]
        # Back up: the same warehouse object reconnects.
        own_server.start()
        assert warehouse.query("SELECT count() FROM spans_plain") == [(1,)]
    finally:
        warehouse.close()
