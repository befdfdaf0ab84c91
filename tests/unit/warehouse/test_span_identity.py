"""0006 on chDB: otel_traces becomes a ReplacingMergeTree by span identity, and a store in the
old layout (plain MergeTree, copies included) migrates without losing a row, even when the
migration stops after any of its statements and runs again."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.config import ClickHouseConfig
from streams.model.span import SpanEvent, SpanLink, make_span
from streams.sink.spans import DEDUPLICATED_SPANS, OTEL_TRACES, OTEL_TRACES_COLUMNS, span_row
from streams.warehouse import Warehouse, open_warehouse
from streams.warehouse.migrate import default_root, load_migrations, migrate, run_statement

# An hour ago: older rows would fall to the 7-day TTL on insert.
T0 = (time.time_ns() // 1_000_000_000 - 3600) * 1_000_000_000
SPAN_IDENTITY = "0006_otel_traces_span_identity"
ONE_ROW_PER_SPAN = (
    f"SELECT * FROM {OTEL_TRACES} ORDER BY TraceId, SpanId LIMIT 1 BY TraceId, SpanId"
)


def spans_rows(traces: int, per_trace: int) -> list[tuple[Any, ...]]:
    """Rows of `traces` traces of `per_trace` spans each, events, links and attributes set."""
    rows = []
    for t in range(traces):
        for i in range(per_trace):
            span = make_span(
                f"{t + 1:032x}",
                f"{t + 1:08x}{i + 1:08x}",
                f"op-{i % 3}",
                f"svc-{t % 2}",
                T0 + t * 1_000_000_000 + i * 1_000,
                T0 + t * 1_000_000_000 + i * 1_000 + 500 + i,
                parent_span_id="" if i == 0 else f"{t + 1:08x}{1:08x}",
                attributes={"n": i, "ok": i % 2 == 0},
                events=[SpanEvent(time_unix_nano=T0 + i, name="retry", attributes={"a": i})],
                links=[
                    SpanLink(trace_id="f" * 32, span_id="e" * 16, trace_state="", attributes={})
                ][: i % 2],
            )
            rows.append(span_row(span))
    return rows


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    """One chDB path for the module; each test starts from an empty database."""
    opened = open_warehouse(ClickHouseConfig(url=f"chdb://{tmp_path_factory.mktemp('chdb')}"))
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def old_layout(warehouse: Warehouse, tmp_path: Path) -> Warehouse:
    """An empty database migrated up to 0005 (otel_traces a plain MergeTree), holding 40 spans
    stored once and 16 of them stored a second time by a differently batched insert."""
    for view in warehouse.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() "
        "ORDER BY engine = 'MaterializedView' DESC"
    ):
        warehouse.execute(f"DROP TABLE IF EXISTS {view[0]}")
    for ddl in sorted(default_root().glob("*.sql")):
        if ddl.stem < SPAN_IDENTITY:
            shutil.copy(ddl, tmp_path)
    migrate(warehouse, ttl_days=7, root=tmp_path)
    rows = spans_rows(4, 10)
    warehouse.insert(OTEL_TRACES, OTEL_TRACES_COLUMNS, rows)
    warehouse.insert(OTEL_TRACES, OTEL_TRACES_COLUMNS, rows[12:28])
    return warehouse


def engine(warehouse: Warehouse, table: str) -> str | None:
    rows = warehouse.query(
        f"SELECT engine FROM system.tables WHERE database = currentDatabase() AND name = '{table}'"
    )
    return str(rows[0][0]) if rows else None


def assert_migrated(warehouse: Warehouse, before: list[dict[str, Any]]) -> None:
    """otel_traces is the span-identity table holding exactly `before`, its view still fills the
    lookup, and no work table is left."""
    assert engine(warehouse, OTEL_TRACES) == "ReplacingMergeTree"
    assert engine(warehouse, "otel_traces_by_span") is None
    after = warehouse.query_dicts(f"SELECT * FROM {DEDUPLICATED_SPANS} ORDER BY TraceId, SpanId")
    assert after == before
    warehouse.insert(OTEL_TRACES, OTEL_TRACES_COLUMNS, spans_rows(5, 1)[4:])
    lookup = warehouse.query(
        f"SELECT count() FROM otel_traces_trace_id_ts WHERE TraceId = '{5:032x}'"
    )
    assert lookup == [(1,)]


def test_the_old_layout_migrates_with_every_span_once(old_layout: Warehouse) -> None:
    assert old_layout.query(f"SELECT count() FROM {OTEL_TRACES}") == [(56,)]
    before = old_layout.query_dicts(ONE_ROW_PER_SPAN)
    assert len(before) == 40

    assert migrate(old_layout, ttl_days=7)[0] == SPAN_IDENTITY

    assert_migrated(old_layout, before)
    table = old_layout.query_dicts(
        "SELECT sorting_key, partition_key FROM system.tables "
        f"WHERE database = currentDatabase() AND name = '{OTEL_TRACES}'"
    )
    assert table == [
        {
            "sorting_key": "ServiceName, SpanName, toDateTime(Timestamp), TraceId, SpanId",
            "partition_key": "toDate(Timestamp)",
        }
    ]
    ddl = old_layout.query(f"SHOW CREATE TABLE {OTEL_TRACES}")[0][0]
    assert "TTL toDateTime(Timestamp) + toIntervalDay(7)" in ddl
    assert "non_replicated_deduplication_window = 1000" in ddl


STATEMENTS = next(m for m in load_migrations() if m.version == SPAN_IDENTITY).statements(7)


@pytest.mark.parametrize("stop_after", range(len(STATEMENTS) + 1))
def test_a_migration_stopped_after_any_statement_completes_when_run_again(
    old_layout: Warehouse, stop_after: int
) -> None:
    """Stopped after `stop_after` statements (the last case: after all of them, before the
    version is recorded), then run again as the worker would."""
    before = old_layout.query_dicts(ONE_ROW_PER_SPAN)
    for statement in STATEMENTS[:stop_after]:
        run_statement(old_layout, statement)
    assert migrate(old_layout, ttl_days=7)[0] == SPAN_IDENTITY
    assert_migrated(old_layout, before)


def test_a_retried_identical_insert_is_dropped_on_arrival(old_layout: Warehouse) -> None:
    migrate(old_layout, ttl_days=7)
    rows = spans_rows(6, 3)[15:]
    old_layout.insert(OTEL_TRACES, OTEL_TRACES_COLUMNS, rows)
    stored = old_layout.query(f"SELECT count() FROM {OTEL_TRACES}")[0][0]
    old_layout.insert(OTEL_TRACES, OTEL_TRACES_COLUMNS, rows)
    assert old_layout.query(f"SELECT count() FROM {OTEL_TRACES}") == [(stored,)]
