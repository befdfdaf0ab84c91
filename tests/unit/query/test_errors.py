"""`tracepipe query errors`: where a service's errors originated, from tracepipe_error_origins on
the real embedded engine (rows made from trace records, as the assembly sweep makes them)."""

from __future__ import annotations

import time

import pytest

from streams.assemble.record import TraceRecord, build_trace_record
from streams.broker.probe import free_port
from streams.cli import main
from streams.model.span import Span
from streams.query import ReadOnlyReader
from streams.query.errors import error_origin_summary, operation_origins, windowed_origins
from streams.sink.traces import ERROR_ORIGINS, ERROR_ORIGINS_COLUMNS, error_origin_rows
from streams.sink.windows import ERROR_ORIGIN_WINDOWS, ERROR_ORIGIN_WINDOWS_COLUMNS
from streams.warehouse import Warehouse
from tests.unit.aggregate.test_origin_windows import window_rows
from tests.unit.assemble.test_analysis_golden import build_spans

S = 1_000_000_000
MS = 1_000_000
NOW = time.time_ns()
T0 = (NOW - 600 * S) // S * S  # ten minutes ago: inside `--since 1h` and the TTL


def checkout(trace_id: str, start_ns: int, *, inventory: bool = True, validate: bool = False,
             payments: bool = True) -> list[Span]:  # fmt: skip
    """A failed checkout: its reserve call fails in inventory (or, without inventory's spans,
    in its own CLIENT span), its validation may fail on its own, and a payments error is
    handled by checkout (a fallback), so it is not checkout's."""
    error = {"status_code": "ERROR"}
    rows = [
        ["root", "", "checkout", "POST /checkout", 0, 100, {"kind": "SERVER", **error}],
        ["reserve", "root", "checkout", "reserve", 5, 30,
         {"kind": "CLIENT", **error, "status_message": "502"}],
    ]  # fmt: skip
    if payments:
        rows += [
            ["charge", "root", "checkout", "charge", 40, 60, {"kind": "CLIENT"}],
            ["pay", "charge", "payments", "Charge", 41, 59,
             {"kind": "SERVER", **error, "status_message": "card declined"}],
        ]  # fmt: skip
    if inventory:
        rows.append(["inv", "reserve", "inventory", "Reserve", 6, 29,
                     {"kind": "SERVER", **error, "status_message": "out of stock"}])  # fmt: skip
    if validate:
        rows.append(["validate", "root", "checkout", "validate", 60, 70,
                     {**error, "status_message": "bad address"}])  # fmt: skip
    return build_spans(rows, trace_id, start_ns, MS)


def store(warehouse: Warehouse, spans: list[Span], version: int = 1) -> None:
    """The trace's error origin rows, and its record into the error-origin windows (stored once
    all are in: `store_windows`)."""
    record = build_trace_record(
        spans, version=version, completion="complete", emitted_at_unix_nano=NOW
    )
    warehouse.insert(ERROR_ORIGINS, ERROR_ORIGINS_COLUMNS, error_origin_rows(record))
    EMITTED.append(record)


EMITTED: list[TraceRecord] = []


def store_windows(warehouse: Warehouse) -> None:
    """The final error-origin windows of every record stored, as the worker aggregates them."""
    rows = window_rows({0: [EMITTED]}, now_ns=NOW + 3600 * S)
    warehouse.insert(ERROR_ORIGIN_WINDOWS, ERROR_ORIGIN_WINDOWS_COLUMNS, rows)


@pytest.fixture(scope="module")
def origins(migrated_warehouse: Warehouse) -> Warehouse:
    """Five checkout error traces in the last hour (four fail in inventory, one of them known
    only from its second version; one fails in its own reserve call, without inventory's spans,
    and validation) and one three hours ago."""
    w = migrated_warehouse
    for i in range(3):
        store(w, checkout(f"{i + 1:032x}", T0 + i * S))
    store(w, checkout(f"{4:032x}", T0 + 3 * S, inventory=False, validate=True, payments=False))
    late = f"{5:032x}"
    store(w, checkout(late, T0 + 4 * S, inventory=False), version=1)
    store(w, checkout(late, T0 + 4 * S), version=2)  # inventory's spans arrived late
    store(w, checkout(f"{6:032x}", NOW - 3 * 3600 * S))
    store_windows(w)
    return w


def test_shares_of_a_service_s_error_traces_by_origin(origins: Warehouse) -> None:
    reader = ReadOnlyReader(origins)
    total, shares = error_origin_summary(reader, "checkout", NOW - 3600 * S, NOW)
    assert total == 5
    assert [(o.service, o.operation, o.traces, o.origin_spans, o.reached_root) for o in shares] == [
        ("inventory", "Reserve", 4, 4, 4),  # trace 5 by its latest version only
        ("checkout", "reserve", 1, 1, 1),  # trace 4: two origins, counted for both
        ("checkout", "validate", 1, 1, 1),
    ]
    assert [o.share for o in shares] == [0.8, 0.2, 0.2]
    assert shares[0].propagated_to == ("checkout",)
    assert shares[0].example_trace_id == f"{5:032x}"
    assert shares[0].status_message == "out of stock"
    # payments handled nothing of checkout's: its own errors are its own.
    total, shares = error_origin_summary(reader, "payments", NOW - 3600 * S, NOW)
    assert (total, [(o.service, o.operation, o.traces) for o in shares]) == (
        4, [("payments", "Charge", 4)],
    )  # fmt: skip
    assert (
        error_origin_summary(reader, "checkout", NOW - 3 * 3600 * S - S, NOW - 2 * 3600 * S)[0] == 1
    )


@pytest.mark.parametrize("service", ["x' OR 1=1 --", "checkout\\", "inventory') OR ('1'='1"])
def test_a_hostile_service_name_is_a_value_not_sql(origins: Warehouse, service: str) -> None:
    assert error_origin_summary(ReadOnlyReader(origins), service, NOW - 3600 * S, NOW) == (0, [])


def test_the_cli_says_where_most_errors_originate(
    origins: Warehouse, chdb_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("TRACEPIPE_CLICKHOUSE_URL", chdb_url)
    monkeypatch.setenv("TRACEPIPE_WORKER_WEB_PORT", str(free_port()))  # no worker answers
    assert main(["query", "errors", "--service", "checkout", "--since", "1h"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(
        "80% of checkout's error traces (4 of 5) originate in inventory/Reserve; traces started "
        "between "
    )
    assert lines[1].split() == [
        "origin", "traces", "share%", "origin", "spans", "reached", "root", "propagated", "to",
        "message", "example", "trace",
    ]  # fmt: skip
    assert lines[3].split()[:6] == ["inventory/Reserve", "4", "80", "4", "4", "checkout"]
    assert lines[4].split()[:6] == ["checkout/reserve", "1", "20", "1", "1", "checkout"]
    assert lines[5].split()[:6] == ["checkout/validate", "1", "20", "1", "1", "checkout"]
    # Then per operation, from the error-origin windows.
    assert lines[7].startswith("checkout's operations, from the error-origin windows between ")
    assert lines[8].split() == ["operation", "error", "traces", "top", "origin", "share%"]
    assert lines[10].split() == ["POST", "/checkout", "5", "inventory/Reserve", "80"]
    assert lines[11].split() == ["reserve", "5", "inventory/Reserve", "80"]
    assert lines[12].split() == ["validate", "1", "checkout/validate", "100"]
    assert main(["query", "errors", "--service", "cart", "--since", "1h"]) == 1
    assert capsys.readouterr().out.startswith("unknown service 'cart'")


def test_operations_and_origins_from_the_error_origin_windows(origins: Warehouse) -> None:
    reader = ReadOnlyReader(origins)
    hour = (NOW - 3600 * S, NOW)
    total, shares = windowed_origins(reader, "checkout", "POST /checkout", *hour)
    # Trace 5 counts for both versions' origins: its first (inventory's spans missing) said
    # checkout/reserve. The per-trace read above counts its latest version only.
    assert total == 5
    assert [(o.service, o.operation, o.traces, o.share) for o in shares] == [
        ("inventory", "Reserve", 4, 0.8),
        ("checkout", "reserve", 2, 0.4),
        ("checkout", "validate", 1, 0.2),
    ]
    assert shares[0].propagated_to == ("checkout",)
    assert [(o.operation, o.error_traces, o.top_origin, o.top_traces)
            for o in operation_origins(reader, "checkout", *hour)] == [
        ("POST /checkout", 5, "inventory/Reserve", 4),
        ("reserve", 5, "inventory/Reserve", 4),
        ("validate", 1, "checkout/validate", 1),
    ]  # fmt: skip
    # payments' errors were handled: seen at payments only.
    assert [o.operation for o in operation_origins(reader, "payments", *hour)] == ["Charge"]
    assert windowed_origins(reader, "checkout", "POST /checkout", NOW - 60 * S, NOW) == (0, [])
    assert operation_origins(reader, "x' OR 1=1 --", *hour) == []
