"""Migration files: ordering by number, statement splitting, TTL substitution, checksums."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from streams.config import Settings
from streams.errors import WarehouseError
from streams.warehouse import migrate as migrate_module
from streams.warehouse.migrate import (
    MIGRATIONS_TABLE,
    applied_versions,
    checksum,
    load_migrations,
    migrate,
    only_if,
    run_db_command,
    run_statement,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class FakeWarehouse:
    """Records statements; keeps the migrations table as a list of rows."""

    url = "fake://"

    def __init__(self, fail_on: str | None = None) -> None:
        self.statements: list[str] = []
        self.table_exists = False
        self.rows: list[tuple[Any, ...]] = []
        self.fail_on = fail_on
        self.closed = False

    def execute(self, sql: str) -> None:
        if self.fail_on and self.fail_on in sql:
            raise WarehouseError(f"boom on {self.fail_on}")
        if MIGRATIONS_TABLE in sql and "CREATE TABLE" in sql:
            self.table_exists = True
        else:
            self.statements.append(sql)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if "system.tables" in sql:
            return [(1 if self.table_exists else 0,)]
        assert MIGRATIONS_TABLE in sql
        return sorted(self.rows)

    def query_dicts(self, sql: str) -> list[dict[str, Any]]:
        raise AssertionError("not used")

    def query_readonly(self, sql: str) -> list[dict[str, Any]]:
        raise AssertionError("not used")

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        assert table == MIGRATIONS_TABLE
        assert tuple(columns) == ("version", "checksum", "applied_at")
        self.rows.extend(tuple(r) for r in rows)
        return len(rows)

    def insert_arrow(self, table: str, data: Any) -> int:
        raise AssertionError("not used")

    def close(self) -> None:
        self.closed = True


def write(root: Path, name: str, text: str) -> None:
    (root / name).write_text(text)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write(tmp_path, "0002_second.sql", "CREATE TABLE b (x UInt8) ENGINE = Memory;\n")
    write(tmp_path, "0010_tenth.sql", "-- only a comment\nSELECT {ttl_days};\n")
    write(
        tmp_path,
        "0001_first.sql",
        "-- header\nCREATE TABLE a (s String DEFAULT 'x;y') ENGINE = Memory\nTTL {ttl_days};\n"
        "\n-- trailing comment only\n;\nCREATE VIEW v AS SELECT 1;",
    )
    return tmp_path


def test_files_are_ordered_by_number_not_by_text(root: Path) -> None:
    assert [m.version for m in load_migrations(root)] == ["0001_first", "0002_second", "0010_tenth"]
    write(root, "9_ninth.sql", "SELECT 1;")
    assert [m.number for m in load_migrations(root)] == [1, 2, 9, 10]


def test_statements_split_at_semicolon_line_ends_and_substitute_ttl(root: Path) -> None:
    first = load_migrations(root)[0]
    assert first.statements(7) == [
        "-- header\nCREATE TABLE a (s String DEFAULT 'x;y') ENGINE = Memory\nTTL 7",
        "CREATE VIEW v AS SELECT 1",
    ]


class AnsweringWarehouse(FakeWarehouse):
    """Answers every query with `answer` (the rows of an ``-- only if:`` query)."""

    def __init__(self, answer: list[tuple[Any, ...]]) -> None:
        super().__init__()
        self.answer = answer

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return self.answer


@pytest.mark.parametrize(
    ("answer", "runs"), [([(1,)], True), ([(0,)], False), ([], False), ([(None,)], False)]
)
def test_a_statement_with_only_if_runs_when_its_query_answers_true(
    answer: list[tuple[Any, ...]], runs: bool
) -> None:
    statement = "-- why\n-- only if: SELECT engine = 'MergeTree' FROM t \nEXCHANGE TABLES a AND b"
    assert only_if(statement) == "SELECT engine = 'MergeTree' FROM t"
    warehouse = AnsweringWarehouse(answer)
    assert run_statement(warehouse, statement) is runs
    assert warehouse.statements == ([statement] if runs else [])


def test_a_statement_without_only_if_always_runs() -> None:
    warehouse = AnsweringWarehouse([(0,)])
    assert only_if("-- only comments about it\nDROP VIEW IF EXISTS v") is None
    assert run_statement(warehouse, "DROP VIEW IF EXISTS v")
    assert warehouse.statements == ["DROP VIEW IF EXISTS v"]


def test_migrate_applies_in_order_once(root: Path) -> None:
    warehouse = FakeWarehouse()
    applied = migrate(warehouse, 30, root=root, now=lambda: T0)
    assert applied == ["0001_first", "0002_second", "0010_tenth"]
    assert [s.splitlines()[-1] for s in warehouse.statements] == [
        "TTL 30",
        "CREATE VIEW v AS SELECT 1",
        "CREATE TABLE b (x UInt8) ENGINE = Memory",
        "SELECT 30",
    ]
    assert warehouse.rows[0] == ("0001_first", checksum((root / "0001_first.sql").read_text()), T0)
    assert migrate(warehouse, 30, root=root) == []
    assert len(warehouse.statements) == 4
    assert applied_versions(warehouse) == applied


def test_new_file_is_applied_later(root: Path) -> None:
    warehouse = FakeWarehouse()
    migrate(warehouse, 30, root=root)
    write(root, "0011_more.sql", "SELECT 11;\n")
    assert migrate(warehouse, 30, root=root) == ["0011_more"]


def test_changed_file_is_refused(root: Path) -> None:
    warehouse = FakeWarehouse()
    migrate(warehouse, 30, root=root)
    write(root, "0002_second.sql", "CREATE TABLE b (x UInt16) ENGINE = Memory;\n")
    with pytest.raises(WarehouseError, match=r"0002_second.sql changed after it was applied"):
        migrate(warehouse, 30, root=root)


def test_crlf_checkout_has_the_same_checksum() -> None:
    assert checksum("a;\r\nb;\r\n") == checksum("a;\nb;\n")


def test_failed_statement_keeps_earlier_versions(root: Path) -> None:
    warehouse = FakeWarehouse(fail_on="CREATE TABLE b")
    with pytest.raises(WarehouseError, match="migration 0002_second failed"):
        migrate(warehouse, 30, root=root)
    assert applied_versions(warehouse) == ["0001_first"]


def test_bad_file_sets_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "0001_a.sql", "SELECT 1;")
    write(tmp_path, "001_b.sql", "SELECT 2;")
    with pytest.raises(WarehouseError, match="share the number 1"):
        load_migrations(tmp_path)
    (tmp_path / "001_b.sql").unlink()
    write(tmp_path, "init.sql", "SELECT 3;")
    with pytest.raises(WarehouseError, match=r"NNNN_name\.sql"):
        load_migrations(tmp_path)
    with pytest.raises(WarehouseError, match="does not exist"):
        load_migrations(tmp_path / "missing")


def test_shipped_ddl_files_load() -> None:
    shipped = load_migrations()
    assert [m.version for m in shipped][:2] == ["0001_otel_traces", "0002_otel_traces_trace_id_ts"]
    assert all("{ttl_days}" not in s for m in shipped for s in m.statements(5))


def test_run_db_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    warehouse = FakeWarehouse()
    monkeypatch.setattr(migrate_module, "open_warehouse", lambda config: warehouse)
    settings = Settings()
    assert run_db_command("status", settings) == 1
    assert "pending  0001_otel_traces" in capsys.readouterr().out
    assert run_db_command("migrate", settings) == 0
    out = capsys.readouterr().out
    assert "applied  0001_otel_traces" in out and "applied now" in out
    assert run_db_command("status", settings) == 0
    assert "pending" not in capsys.readouterr().out
    assert warehouse.closed
    assert run_db_command("drop", settings) == 2
    assert "unknown db action" in capsys.readouterr().err
