"""Error origins stored as the critical path is: tracepipe_traces.ErrorOrigins and one
tracepipe_error_origins row per trace and origin service/operation, on the real embedded engine;
0007 adds the column to a store that already holds traces."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from streams.assemble.record import TraceRecord, build_trace_record
from streams.config import ClickHouseConfig
from streams.model.span import Span
from streams.sink.traces import (
    ERROR_ORIGINS,
    ERROR_ORIGINS_COLUMNS,
    TRACES,
    TRACES_COLUMNS,
    error_origin_rows,
    trace_row,
)
from streams.warehouse import Warehouse, open_warehouse
from streams.warehouse.migrate import default_root, migrate
from tests.unit.assemble.test_analysis_golden import build_spans, span_id

MS = 1_000_000
T0 = (time.time_ns() // 1_000_000_000 - 3600) * 1_000_000_000  # inside the 7-day TTL
ERROR_ORIGINS_DDL = "0007_tracepipe_error_origins"


def retried_checkout(trace_id: str) -> list[Span]:
    """Checkout whose two reserve attempts both fail in inventory (one origin operation, two
    origin spans) while payments fails on its own, the root failing with both."""
    error = {"status_code": "ERROR"}
    return build_spans(
        [
            ["root", "", "checkout", "POST /checkout", 0, 100, {"kind": "SERVER", **error}],
            ["try1", "root", "checkout", "reserve", 5, 30, {"kind": "CLIENT", **error}],
            ["inv1", "try1", "inventory", "Reserve", 6, 29,
             {"kind": "SERVER", **error, "status_message": "out of stock"}],
            ["try2", "root", "checkout", "reserve", 35, 60, {"kind": "CLIENT", **error}],
            ["inv2", "try2", "inventory", "Reserve", 36, 59,
             {"kind": "SERVER", **error, "status_message": "still out of stock"}],
            ["pay", "root", "checkout", "charge", 60, 90, {"kind": "CLIENT"}],
            ["charge", "pay", "payments", "Charge", 61, 89,
             {"kind": "SERVER", **error, "status_message": "card declined"}],
        ],
        trace_id,
        T0,
        MS,
    )  # fmt: skip


def record_of(spans: list[Span], version: int = 1) -> TraceRecord:
    return build_trace_record(
        spans, version=version, completion="complete", emitted_at_unix_nano=T0
    )


def test_rows_merge_a_trace_s_origins_per_service_and_operation() -> None:
    record = record_of(retried_checkout("a" * 32))
    assert [o["span_id"] for o in record["error_origins"]] == [
        span_id(n) for n in ("inv1", "inv2", "charge")
    ]
    row = dict(zip(TRACES_COLUMNS, trace_row(record), strict=True))
    assert row["ErrorOrigins"] == [("inventory", "Reserve"), ("payments", "Charge")]
    rows = [dict(zip(ERROR_ORIGINS_COLUMNS, r, strict=True)) for r in error_origin_rows(record)]
    assert [
        (r["ServiceName"], r["SpanName"], r["OriginSpans"], r["PropagatedTo"]) for r in rows
    ] == [
        ("inventory", "Reserve", 2, ["checkout"]),
        ("payments", "Charge", 1, []),
    ]
    assert [(r["ReachedRoot"], r["StatusMessage"]) for r in rows] == [
        (True, "out of stock"),
        (False, "card declined"),
    ]
    assert {(r["TraceId"], r["Version"], r["Start"]) for r in rows} == {("a" * 32, 1, T0)}
    clean = record_of([s for s in retried_checkout("b" * 32) if s["status_code"] != "ERROR"])
    assert error_origin_rows(clean) == []
    assert dict(zip(TRACES_COLUMNS, trace_row(clean), strict=True))["ErrorOrigins"] == []


@pytest.fixture
def store_before_0007(tmp_path: Path) -> Warehouse:
    """A chDB store migrated up to 0006, holding a trace row of that layout."""
    ddl = tmp_path / "ddl"
    ddl.mkdir()
    for path in sorted(default_root().glob("*.sql")):
        if path.stem < ERROR_ORIGINS_DDL:
            shutil.copy(path, ddl)
    warehouse = open_warehouse(ClickHouseConfig(url=f"chdb://{tmp_path / 'data'}"))
    migrate(warehouse, ttl_days=7, root=ddl)
    old = dict(zip(TRACES_COLUMNS, trace_row(record_of(retried_checkout("c" * 32))), strict=True))
    del old["ErrorOrigins"]
    warehouse.insert(TRACES, list(old), [list(old.values())])
    return warehouse


def test_0007_adds_the_column_to_stored_traces_and_the_rows_round_trip(
    store_before_0007: Warehouse,
) -> None:
    warehouse = store_before_0007
    try:
        assert migrate(warehouse, ttl_days=7)[0] == ERROR_ORIGINS_DDL
        assert migrate(warehouse, ttl_days=7) == []
        record = record_of(retried_checkout("d" * 32))
        warehouse.insert(TRACES, TRACES_COLUMNS, [trace_row(record)])
        warehouse.insert(ERROR_ORIGINS, ERROR_ORIGINS_COLUMNS, error_origin_rows(record))
        stored = warehouse.query(
            f"SELECT TraceId, ErrorOrigins FROM {TRACES} FINAL ORDER BY TraceId"
        )
        assert [(t, [tuple(p) for p in o]) for t, o in stored] == [
            ("c" * 32, []),  # stored before 0007
            ("d" * 32, [("inventory", "Reserve"), ("payments", "Charge")]),
        ]
        rows = warehouse.query(
            "SELECT ServiceName, SpanName, OriginSpans, PropagatedTo, ReachedRoot, StatusMessage "
            f"FROM {ERROR_ORIGINS} FINAL ORDER BY ServiceName"
        )
        assert [tuple(r) for r in rows] == [
            ("inventory", "Reserve", 2, ["checkout"], True, "out of stock"),
            ("payments", "Charge", 1, [], False, "card declined"),
        ]
    finally:
        warehouse.close()
