"""The embedded backend on the real chDB engine: the exporter's schema, migrations, round trips."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.config import ClickHouseConfig
from streams.errors import WarehouseError
from streams.paths import schemas_root
from streams.warehouse import open_warehouse
from streams.warehouse.chdb_backend import ChdbWarehouse
from streams.warehouse.migrate import applied_versions, migrate

pytestmark = pytest.mark.integration

OTEL_TRACES_COLUMNS = [
    ("Timestamp", "DateTime64(9)"),
    ("TraceId", "String"),
    ("SpanId", "String"),
    ("ParentSpanId", "String"),
    ("TraceState", "String"),
    ("SpanName", "LowCardinality(String)"),
    ("SpanKind", "LowCardinality(String)"),
    ("ServiceName", "LowCardinality(String)"),
    ("ResourceAttributes", "Map(LowCardinality(String), String)"),
    ("ScopeName", "String"),
    ("ScopeVersion", "String"),
    ("SpanAttributes", "Map(LowCardinality(String), String)"),
    ("Duration", "UInt64"),
    ("StatusCode", "LowCardinality(String)"),
    ("StatusMessage", "String"),
    ("Events.Timestamp", "Array(DateTime64(9))"),
    ("Events.Name", "Array(LowCardinality(String))"),
    ("Events.Attributes", "Array(Map(LowCardinality(String), String))"),
    ("Links.TraceId", "Array(String)"),
    ("Links.SpanId", "Array(String)"),
    ("Links.TraceState", "Array(String)"),
    ("Links.Attributes", "Array(Map(LowCardinality(String), String))"),
]
INSERT_COLUMNS = [name for name, _ in OTEL_TRACES_COLUMNS]
# A whole second an hour ago: rows must be younger than the 7-day TTL or the engine drops them.
T0 = (time.time_ns() // 10**9 - 3600) * 10**9


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[ChdbWarehouse]:
    opened = open_warehouse(ClickHouseConfig(url=f"chdb://{tmp_path / 'chdb'}"))
    assert isinstance(opened, ChdbWarehouse)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def migrated(warehouse: ChdbWarehouse) -> ChdbWarehouse:
    migrate(warehouse, ttl_days=7)
    return warehouse


def span(i: int, trace: str, start_ns: int, **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "Timestamp": start_ns,
        "TraceId": trace,
        "SpanId": f"{i:016x}",
        "ParentSpanId": "" if i == 0 else f"{0:016x}",
        "TraceState": "",
        "SpanName": f"op{i}",
        "SpanKind": "Server",
        "ServiceName": "checkout",
        "ResourceAttributes": {"service.name": "checkout", "host.name": "h1"},
        "ScopeName": "tracepipe.test",
        "ScopeVersion": "1.0",
        "SpanAttributes": {"http.route": "/pay", "n": str(i)},
        "Duration": 1_500_000 + i,
        "StatusCode": "Ok",
        "StatusMessage": "",
        "Events.Timestamp": [start_ns + 1, start_ns + 999_999_999],
        "Events.Name": ["retry", "done"],
        "Events.Attributes": [{"attempt": "2"}, {}],
        "Links.TraceId": ["f" * 32],
        "Links.SpanId": ["e" * 16],
        "Links.TraceState": ["k=v"],
        "Links.Attributes": [{"why": "batch"}],
    }
    row.update(over)
    return row


def insert(warehouse: ChdbWarehouse, rows: list[dict[str, Any]]) -> int:
    values = [[r[c] for c in INSERT_COLUMNS] for r in rows]
    return warehouse.insert("otel_traces", INSERT_COLUMNS, values)


def test_migrate_is_idempotent(warehouse: ChdbWarehouse) -> None:
    first = migrate(warehouse, ttl_days=7)
    assert first[:2] == ["0001_otel_traces", "0002_otel_traces_trace_id_ts"]
    assert migrate(warehouse, ttl_days=7) == []
    assert applied_versions(warehouse) == first
    recorded = warehouse.query_dicts("SELECT * FROM tracepipe_schema_migrations ORDER BY version")
    assert [r["version"] for r in recorded] == first
    assert all(len(r["checksum"]) == 64 and r["applied_at"].tzinfo for r in recorded)


def test_otel_traces_has_the_exporters_columns(migrated: ChdbWarehouse) -> None:
    columns = migrated.query(
        "SELECT name, type FROM system.columns "
        "WHERE database = currentDatabase() AND table = 'otel_traces' ORDER BY position"
    )
    assert columns == OTEL_TRACES_COLUMNS
    codecs = dict(
        migrated.query(
            "SELECT name, compression_codec FROM system.columns "
            "WHERE database = currentDatabase() AND table = 'otel_traces'"
        )
    )
    assert codecs["Timestamp"] == "CODEC(Delta(8), ZSTD(1))"
    assert codecs["TraceId"] == "CODEC(ZSTD(1))"
    indexes = migrated.query(
        "SELECT name, type_full, expr FROM system.data_skipping_indices "
        "WHERE database = currentDatabase() AND table = 'otel_traces' ORDER BY name"
    )
    assert [i[0] for i in indexes] == [
        "idx_duration",
        "idx_res_attr_key",
        "idx_res_attr_value",
        "idx_span_attr_key",
        "idx_span_attr_value",
        "idx_trace_id",
    ]
    assert ("idx_trace_id", "bloom_filter(0.001)", "TraceId") in indexes
    table = migrated.query_dicts(
        "SELECT partition_key, sorting_key, engine FROM system.tables "
        "WHERE database = currentDatabase() AND name = 'otel_traces'"
    )
    assert table == [
        {
            "partition_key": "toDate(Timestamp)",
            "sorting_key": "ServiceName, SpanName, toDateTime(Timestamp), TraceId, SpanId",
            "engine": "ReplacingMergeTree",
        }
    ]
    lookup = migrated.query(
        "SELECT name, type FROM system.columns "
        "WHERE database = currentDatabase() AND table = 'otel_traces_trace_id_ts' "
        "ORDER BY position"
    )
    assert lookup == [("TraceId", "String"), ("Start", "DateTime"), ("End", "DateTime")]


def test_ttl_days_is_substituted(migrated: ChdbWarehouse) -> None:
    ddl = migrated.query("SHOW CREATE TABLE otel_traces")[0][0]
    assert "TTL toDateTime(Timestamp) + toIntervalDay(7)" in ddl
    assert "ttl_only_drop_parts = 1" in ddl
    lookup = migrated.query("SHOW CREATE TABLE otel_traces_trace_id_ts")[0][0]
    assert "TTL toDateTime(Start) + toIntervalDay(7)" in lookup


def test_spans_round_trip_with_events_links_and_maps(migrated: ChdbWarehouse) -> None:
    trace = "a" * 32
    rows = [
        span(0, trace, T0 + 123_456_789),
        span(
            1,
            trace,
            T0 + 2_000_000_001,
            SpanKind="Client",
            StatusCode="Error",
            StatusMessage="timeout",
            **{
                "Events.Timestamp": [],
                "Events.Name": [],
                "Events.Attributes": [],
                "Links.TraceId": [],
                "Links.SpanId": [],
                "Links.TraceState": [],
                "Links.Attributes": [],
            },
        ),
        span(2, trace, T0 + 3_000_000_000, SpanAttributes={}, ResourceAttributes={"ü": "ß;'\""}),
    ]
    assert insert(migrated, rows) == 3
    back = migrated.query_dicts("SELECT * FROM otel_traces ORDER BY SpanId")
    assert back == rows


def test_materialized_view_fills_the_trace_id_lookup(migrated: ChdbWarehouse) -> None:
    trace = "b" * 32
    insert(
        migrated,
        [span(0, trace, T0 + 500_000_000), span(1, trace, T0 + 9_200_000_000), span(2, "", T0)],
    )
    lookup = migrated.query_dicts(
        "SELECT TraceId, min(Start) AS Start, max(End) AS End "
        "FROM otel_traces_trace_id_ts GROUP BY TraceId"
    )
    assert len(lookup) == 1 and lookup[0]["TraceId"] == trace
    assert int(lookup[0]["Start"].timestamp()) == T0 // 10**9
    assert int(lookup[0]["End"].timestamp()) == T0 // 10**9 + 9


def test_a_five_thousand_span_batch_keeps_count_and_types(migrated: ChdbWarehouse) -> None:
    rows = [span(i, f"{i // 10:032x}", T0 + i * 1_000_003) for i in range(5_000)]
    assert insert(migrated, rows) == 5_000
    stats = migrated.query_dicts(
        "SELECT count() AS n, uniqExact(TraceId) AS traces, max(Timestamp) AS last, "
        "sum(length(`Events.Name`)) AS events FROM otel_traces"
    )
    assert stats == [{"n": 5_000, "traces": 500, "last": T0 + 4_999 * 1_000_003, "events": 10_000}]


def test_an_insert_skips_the_engines_merge_of_its_own_block(migrated: ChdbWarehouse) -> None:
    # INSERT_SETTINGS' optimize_on_insert=0: a span twice in one insert is stored twice (the
    # engine's merge of the block would have cost twice the CPU to collapse it) and is one row
    # under FINAL, as copies in different inserts always were.
    copy = span(0, "c" * 32, T0)
    assert insert(migrated, [copy, copy]) == 2
    stored = migrated.query_dicts(
        "SELECT (SELECT count() FROM otel_traces) AS stored, "
        "(SELECT count() FROM otel_traces FINAL) AS final"
    )
    assert stored == [{"stored": 2, "final": 1}]


def test_insert_errors_are_warehouse_errors(migrated: ChdbWarehouse) -> None:
    with pytest.raises(WarehouseError, match="unknown column"):
        migrated.insert("otel_traces", ["Nope"], [[1]])
    with pytest.raises(WarehouseError, match="no such table"):
        migrated.insert("missing_table", ["x"], [[1]])
    with pytest.raises(WarehouseError, match="does not fit"):
        migrated.insert("otel_traces", ["Duration"], [["not a number"]])
    with pytest.raises(WarehouseError, match="has 2 values for 1 columns"):
        migrated.insert("otel_traces", ["Duration"], [[1, 2]])
    with pytest.raises(WarehouseError, match="chDB query failed"):
        migrated.query("SELECT * FROM no_such_table")
    assert migrated.insert("otel_traces", INSERT_COLUMNS, []) == 0


def test_changed_applied_file_is_refused(tmp_path: Path, warehouse: ChdbWarehouse) -> None:
    root = tmp_path / "ddl"
    shutil.copytree(schemas_root() / "clickhouse", root)
    migrate(warehouse, ttl_days=7, root=root)
    first = sorted(root.glob("0001_*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(WarehouseError, match="changed after it was applied"):
        migrate(warehouse, ttl_days=7, root=root)


def test_close_releases_the_data_path(tmp_path: Path) -> None:
    path = tmp_path / "owned"
    first = ChdbWarehouse(path)
    first.execute("CREATE TABLE t (x UInt8) ENGINE = MergeTree ORDER BY x")
    with pytest.raises(WarehouseError, match="one data path per process"):
        ChdbWarehouse(tmp_path / "other")
    probe = [sys.executable, "-c", f"import chdb; chdb.connect({str(path)!r}).close()"]
    assert subprocess.run(probe, capture_output=True, timeout=120).returncode != 0
    first.close()
    first.close()  # idempotent
    assert subprocess.run(probe, capture_output=True, timeout=120).returncode == 0
    with ChdbWarehouse(tmp_path / "other") as other:
        assert other.query("SELECT 1 AS one") == [(1,)]
    with pytest.raises(WarehouseError, match="closed"):
        first.query("SELECT 1")
