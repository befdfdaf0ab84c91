"""User SQL's own checks (one read-only statement, no INTO OUTFILE, no described table
function) and the one-line messages of the engine's refusals; then the same checks and
ClickHouse's readonly=1 together on the real embedded engine, next to its writers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.config import ClickHouseConfig
from streams.errors import QueryRefusedError, WarehouseError
from streams.warehouse import Warehouse, open_warehouse, quote_string
from streams.warehouse.readonly import engine_reason, is_readonly_refusal, read_only_statement

ALLOWED = [
    ("SELECT 1", "SELECT 1"),
    ("  select 1 ;  ", "select 1"),
    ("SELECT 1; -- a comment after the one statement", "SELECT 1"),
    ("WITH 1 AS x SELECT x", "WITH 1 AS x SELECT x"),
    ("(SELECT 1) UNION ALL (SELECT 2)", "(SELECT 1) UNION ALL (SELECT 2)"),
    ("SHOW TABLES", "SHOW TABLES"),
    ("DESCRIBE TABLE otel_traces", "DESCRIBE TABLE otel_traces"),
    ("DESC otel_traces", "DESC otel_traces"),
    ("DESCRIBE (SELECT 1)", "DESCRIBE (SELECT 1)"),
    ("EXISTS TABLE otel_traces", "EXISTS TABLE otel_traces"),
    ("EXPLAIN SELECT 1", "EXPLAIN SELECT 1"),
    # Text that only looks like a second statement or INTO OUTFILE: strings, names, comments.
    ("SELECT 'a; DROP TABLE t' AS s", "SELECT 'a; DROP TABLE t' AS s"),
    ("SELECT 'INTO OUTFILE' AS s", "SELECT 'INTO OUTFILE' AS s"),
    ("SELECT 'it''s; x', 'a\\'; b'", "SELECT 'it''s; x', 'a\\'; b'"),
    ('SELECT 1 AS "into; outfile"', 'SELECT 1 AS "into; outfile"'),
    ("SELECT 1 AS `x;y`", "SELECT 1 AS `x;y`"),
    ("SELECT 1 /* ; INTO OUTFILE */", "SELECT 1 /* ; INTO OUTFILE */"),
    ("-- SELECT 1; DROP\nSELECT 2", "-- SELECT 1; DROP\nSELECT 2"),
    ("SELECT 'é中😀;'", "SELECT 'é中😀;'"),
]


@pytest.mark.parametrize(("sql", "statement"), ALLOWED)
def test_one_read_only_statement_is_allowed(sql: str, statement: str) -> None:
    assert read_only_statement(sql) == statement


REFUSED = [
    ("", "no SQL statement"),
    (" ; ", "no SQL statement"),
    ("-- only a comment", "no SQL statement"),
    ("SELECT 1; SELECT 2", "several statements"),
    ("SELECT 1;; ", "several statements"),
    ("SELECT 1; -- x\nDROP TABLE t", "several statements"),
    ("SELECT 1 -- x\r; DROP TABLE t", "several statements"),
    ("SELECT 1 /* a */; /* b */ DROP TABLE t", "several statements"),
    ("SELECT 1 /* /* */; DROP TABLE t */", "several statements"),
    ("SELECT '\\'' ; DROP TABLE t", "several statements"),
    ("SELECT $$x$$; DROP TABLE t", "several statements"),
    ("SELECT 'x' INTO OUTFILE '/tmp/f' FORMAT CSV", "INTO OUTFILE"),
    ("select 'x' into outfile '/tmp/f'", "INTO OUTFILE"),
    ("SELECT 'x' INTO /* hidden */ OUTFILE '/tmp/f'", "INTO OUTFILE"),
    ("SELECT 'x' INTO\n\tOUTFILE '/tmp/f'", "INTO OUTFILE"),
    ("SELECT 'x' INTO\u00a0OUTFILE '/tmp/f'", "INTO OUTFILE"),
    ("SELECT 'x' INTO\u200bOUTFILE '/tmp/f'", "INTO OUTFILE"),
    ("SELECT 1INTO OUTFILE '/tmp/f'", "INTO OUTFILE"),
    ("EXPLAIN SELECT 1 INTO OUTFILE '/tmp/f'", "INTO OUTFILE"),
    ("INSERT INTO t VALUES (1)", "INSERT is not a read-only statement"),
    ("DROP TABLE otel_traces", "DROP is not a read-only statement"),
    ("SET readonly = 0", "SET is not a read-only statement"),
    ("SYSTEM STOP MERGES", "SYSTEM is not a read-only statement"),
    ("KILL QUERY WHERE 1", "KILL is not a read-only statement"),
    ("/* SELECT */ OPTIMIZE TABLE t", "OPTIMIZE is not a read-only statement"),
    ("DESCRIBE file('/etc/passwd', 'TSVWithNames')", "table function"),
    ("desc TABLE url('http://10.0.0.1/', 'CSV')", "table function"),
    ("EXPLAIN TABLE OVERRIDE mysql('h', 'd', 't', 'u', 'p')", "table function"),
    ("SELECT 'unterminated", "unterminated"),
    ("SELECT 1\x00; DROP TABLE t", "NUL"),
]


@pytest.mark.parametrize(("sql", "reason"), REFUSED)
def test_everything_else_is_refused_on_one_line(sql: str, reason: str) -> None:
    with pytest.raises(QueryRefusedError, match=reason) as refused:
        read_only_statement(sql)
    assert "\n" not in str(refused.value)


def test_the_engines_reason_on_one_line() -> None:
    chdb = (
        "chDB query failed: Code: 164. DB::Exception: Code: 164. DB::Exception: Cannot modify "
        "'readonly' setting in readonly mode. (READONLY) (version 26.9.2.1). (READONLY)\n  in: x"
    )
    server = (
        "ClickHouse refused 'SELECT': Code: 164.\nDB::Exception: Table functions are forbidden "
        "in readonly mode. Stack trace:\n\n0. /lib/x86_64-linux-gnu/libclickhouse.so.18.16"
    )
    user = "Code: 164. DB::Exception: default: Cannot execute query in readonly mode. (READONLY)"
    assert engine_reason(chdb) == "Cannot modify 'readonly' setting in readonly mode. (READONLY)"
    assert engine_reason(server) == "Table functions are forbidden in readonly mode"
    assert engine_reason(user) == "Cannot execute query in readonly mode. (READONLY)"
    assert all(is_readonly_refusal(m) for m in (chdb, server, user))
    assert not is_readonly_refusal("Code: 1640. DB::Exception: something else")


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[Warehouse]:
    opened = open_warehouse(ClickHouseConfig(url=f"chdb://{tmp_path / 'chdb'}"))
    try:
        opened.execute("CREATE TABLE spans_seen (n UInt32) ENGINE = MergeTree ORDER BY n")
        yield opened
    finally:
        opened.close()


def test_readonly_refuses_host_files_and_the_writers_still_write(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2\n")
    outfile = tmp_path / "written.csv"
    # The statements the issue names, verified to work before this change.
    with pytest.raises(QueryRefusedError, match="readonly mode") as read:
        warehouse.query_readonly(f"SELECT * FROM file('{secret}', 'LineAsString')")
    assert "hunter2" not in str(read.value) and "\n" not in str(read.value)
    with pytest.raises(QueryRefusedError, match="INTO OUTFILE"):
        warehouse.query_readonly(f"SELECT 'x' INTO OUTFILE '{outfile}' FORMAT CSV")
    assert not outfile.exists()
    # readonly=1 alone lets these through on chDB: they are refused before the engine.
    with pytest.raises(QueryRefusedError, match="table function"):
        warehouse.query_readonly(f"DESCRIBE file('{secret}', 'TSVWithNames')")
    with pytest.raises(QueryRefusedError, match="several statements"):
        warehouse.query_readonly("SELECT 1; INSERT INTO spans_seen VALUES (1)")
    for engine_refuses in (
        "SELECT * FROM url('http://127.0.0.1:9/', 'CSV', 'a String')",
        "SELECT * FROM remote('127.0.0.1', system.one)",
        "SELECT 1 SETTINGS readonly = 0",
    ):
        with pytest.raises(QueryRefusedError, match="readonly mode"):
            warehouse.query_readonly(engine_refuses)
    with pytest.raises(WarehouseError, match=r"^query failed: ") as failed:
        warehouse.query_readonly("SELECT no_such_column FROM spans_seen")
    assert "\n" not in str(failed.value)
    # The writers' connection is not read-only, before or after.
    assert warehouse.insert("spans_seen", ["n"], [(1,), (2,)]) == 2
    assert warehouse.query_readonly("SELECT n FROM spans_seen ORDER BY n;") == [{"n": 1}, {"n": 2}]
    assert warehouse.query_readonly("SELECT getSetting('readonly') AS r") == [{"r": 1}]
    assert warehouse.query_dicts("SELECT getSetting('readonly') AS r") == [{"r": 0}]


HOSTILE = [
    "'",
    "\\",
    "\\'",
    "'; DROP TABLE spans_seen; --",
    "' OR 1 = 1 --",
    "x' INTO OUTFILE '/tmp/tracepipe-hostile",
    "\\N",
    "\\0\\x41\\u0041",
    "a\x00b",
    "é 中文 😀 \u202e \u2028",
    "line\nbreak\r\ttab",
    '`"$$',
    "/* */ -- #",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_quoted_values_come_back_unchanged(warehouse: Warehouse, value: str) -> None:
    literal = quote_string(value)
    assert "\x00" not in literal
    assert warehouse.query_readonly(f"SELECT {literal} AS v") == [{"v": value}]
    assert warehouse.query_dicts(f"SELECT {literal} AS v") == [{"v": value}]
