"""Latency and service-graph summaries over stored windows, on a real chDB warehouse: percentiles
from merged sketches (never averaged), status classes merged, filters, and the CLI around them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import pytest

from streams.aggregate.merge import FinalWindow, final_record
from streams.aggregate.observations import EDGE_DIMENSIONS, LATENCY_DIMENSIONS
from streams.aggregate.records import EdgeWindowRecord, LatencyWindowRecord
from streams.aggregate.sketch import LatencySketch
from streams.aggregate.stats import Exemplar, WindowStats, window_stats
from streams.broker.probe import free_port
from streams.cli import main
from streams.errors import TracepipeError, WarehouseError
from streams.query.timestamps import format_duration, format_time, parse_time
from streams.query.windows import (
    SLOWEST_TRACES,
    SlowTrace,
    dependency_summary,
    latency_summary,
    service_summary,
    slow_trace_ids,
)
from streams.sink.windows import (
    EDGES,
    EDGES_COLUMNS,
    LATENCY,
    LATENCY_COLUMNS,
    edge_row,
    latency_row,
)
from streams.warehouse import Warehouse

WINDOW_NS = 10_000_000_000
MS = 1_000_000
# Aligned windows half an hour ago: inside `--since 1h`, younger than the TTL.
T0 = (time.time_ns() - 1_800_000_000_000) // WINDOW_NS * WINDOW_NS
SINCE, UNTIL = T0, T0 + 100 * WINDOW_NS
CART = ("cart", "GET /cart", "SERVER", "ok")


def trace_id(duration_ns: int) -> str:
    """Each exemplar's trace id encodes its duration, so tests can name the slowest."""
    return f"{duration_ns:032x}"


def stats(durations_ns: Sequence[int], errors: int, exemplars: int = 3) -> WindowStats:
    slow = sorted(durations_ns, reverse=True)[:exemplars]
    chosen = [Exemplar(d, trace_id(d), f"{i:016x}") for i, d in enumerate(slow)]
    return window_stats(list(durations_ns), errors, chosen, 0.01)


def latency(
    durations_ns: Sequence[int],
    window: int = 0,
    key: tuple[str, str, str, str] = CART,
    errors: int = 0,
) -> LatencyWindowRecord:
    start = T0 + window * WINDOW_NS
    final = FinalWindow(start, start + WINDOW_NS, key, stats(durations_ns, errors), 1)
    return cast(LatencyWindowRecord, final_record(final, LATENCY_DIMENSIONS, start + WINDOW_NS))


def edge(
    durations_ns: Sequence[int], client: str, server: str, kind: str = "", errors: int = 0
) -> EdgeWindowRecord:
    final = FinalWindow(T0, T0 + WINDOW_NS, (client, server, kind), stats(durations_ns, errors), 1)
    return cast(EdgeWindowRecord, final_record(final, EDGE_DIMENSIONS, T0 + WINDOW_NS))


@pytest.fixture
def warehouse(window_tables: Warehouse) -> Warehouse:
    return window_tables


def store(warehouse: Warehouse, *records: LatencyWindowRecord | EdgeWindowRecord) -> None:
    for record in records:
        if "service" in record:
            warehouse.insert(LATENCY, LATENCY_COLUMNS, [latency_row(cast(Any, record))])
        else:
            warehouse.insert(EDGES, EDGES_COLUMNS, [edge_row(cast(Any, record))])


def test_percentiles_come_from_merged_sketches_not_averages(warehouse: Warehouse) -> None:
    rng = np.random.default_rng(5)
    fast = rng.integers(1 * MS, 2 * MS, 300).tolist()
    slow = rng.integers(50 * MS, 150 * MS, 100).tolist()
    first, second = latency(fast, window=0), latency(slow, window=1)
    store(warehouse, first, second)

    (summary,) = latency_summary(warehouse, "cart", None, SINCE, UNTIL)

    everything = LatencySketch()
    everything.add_many(fast + slow)
    observed = (min(fast), max(slow))
    averaged_p99 = (first["p99_ns"] + second["p99_ns"]) / 2
    assert summary.p99_ns == everything.quantile(0.99, observed)
    assert summary.p50_ns == everything.quantile(0.5, observed)
    assert abs(summary.p99_ns - averaged_p99) > 0.3 * summary.p99_ns
    exact = sorted(fast + slow)
    for q, value in ((0.5, summary.p50_ns), (0.9, summary.p90_ns), (0.99, summary.p99_ns)):
        rank_value = exact[int(q * (len(exact) - 1))]
        assert abs(value - rank_value) <= 0.01 * rank_value
    assert (summary.calls, summary.windows) == (400, 2)
    assert summary.min_ns == min(fast) and summary.max_ns == max(slow)
    assert summary.mean_ns == pytest.approx(sum(fast + slow) / 400)
    assert summary.throughput_per_s == pytest.approx(400 / 20)  # two 10 s windows stored
    assert summary.kind == "Server"


def test_rates_are_over_the_time_the_windows_cover_not_the_range(warehouse: Warehouse) -> None:
    """An hour asked for, 30 s of windows stored: cart's 50 calls/s read 50, not 0.42."""
    store(
        warehouse,
        latency([MS] * 500, window=40),
        latency([MS] * 500, window=41),
        latency([MS] * 500, window=42),
        latency([MS] * 30, window=41, key=("web", "GET /", "SERVER", "ok")),
        edge([MS] * 300, "web", "cart"),
    )
    since, until = T0, T0 + 360 * WINDOW_NS
    (cart, web) = latency_summary(warehouse, None, None, since, until)
    assert cart.throughput_per_s == pytest.approx(1500 / 30)
    # One denominator for every row of a summary: rates compare as calls do.
    assert web.throughput_per_s == pytest.approx(30 / 30)
    assert cart.coverage == web.coverage
    assert (cart.coverage.start_ns, cart.coverage.end_ns) == (
        T0 + 40 * WINDOW_NS,
        T0 + 43 * WINDOW_NS,
    )
    assert cart.coverage.describe() == (
        f"rates over 30s of data, {format_time(T0 + 40 * WINDOW_NS)}-"
        f"{format_time(T0 + 43 * WINDOW_NS)[11:]}"
    )
    (only_cart,) = latency_summary(warehouse, "cart", None, since, until)
    assert only_cart.throughput_per_s == pytest.approx(50)
    served = {s.service: s.throughput_per_s for s in service_summary(warehouse, since, until)}
    assert served == {"cart": pytest.approx(50), "web": pytest.approx(1)}
    (web_cart,) = dependency_summary(warehouse, since, until)
    assert web_cart.throughput_per_s == pytest.approx(30)  # its own table's single window


def test_percentiles_stay_within_the_calls_min_and_max(warehouse: Warehouse) -> None:
    """Every call 100 ms: the bin's value is 100.5 ms, but no percentile may exceed the max."""
    store(
        warehouse,
        latency([100 * MS] * 100),
        latency([100 * MS] * 50, window=1),
        edge([100 * MS] * 100, "web", "cart"),
    )
    (summary,) = latency_summary(warehouse, "cart", None, SINCE, UNTIL)
    assert summary.max_ns == 100 * MS
    assert (summary.p50_ns, summary.p90_ns, summary.p95_ns, summary.p99_ns) == (100 * MS,) * 4
    (served,) = service_summary(warehouse, SINCE, UNTIL)
    assert served.p99_ns == served.p50_ns == 100 * MS
    (web_cart,) = dependency_summary(warehouse, SINCE, UNTIL)
    assert web_cart.p50_ns == web_cart.p99_ns == 100 * MS
    # And one just above a bin's lower edge cannot read below the min either.
    store(warehouse, latency([101 * MS] * 10, key=("low", "op", "SERVER", "ok")))
    (low,) = latency_summary(warehouse, "low", None, SINCE, UNTIL)
    assert low.p50_ns == low.min_ns == 101 * MS


def test_format_duration() -> None:
    assert [format_duration(s * 1_000_000_000) for s in (100, 10, 3600, 93_784)] == [
        "1m40s",
        "10s",
        "1h",
        "1d2h3m4s",
    ]
    assert format_duration(500 * MS) == "500ms"


def test_service_summary_merges_the_served_operations_of_each_service(
    warehouse: Warehouse,
) -> None:
    store(
        warehouse,
        latency([1 * MS] * 8, key=CART),
        latency([90 * MS, 95 * MS], key=("cart", "POST /cart", "SERVER", "error"), errors=2),
        latency([500 * MS] * 50, key=("cart", "SELECT", "CLIENT", "ok")),  # not served: left out
        latency([7 * MS] * 4, key=("shipping", "ShipOrder", "CONSUMER", "ok")),
    )
    by_service = {s.service: s for s in service_summary(warehouse, SINCE, UNTIL)}
    assert sorted(by_service) == ["cart", "shipping"]
    cart = by_service["cart"]
    assert (cart.calls, cart.errors, cart.max_ns) == (10, 2, 95 * MS)
    everything = LatencySketch()
    everything.add_many([1 * MS] * 8 + [90 * MS, 95 * MS])
    assert cart.p99_ns == pytest.approx(everything.quantile(0.99), rel=1e-9)
    assert by_service["shipping"].calls == 4


def test_status_classes_of_an_operation_are_merged(warehouse: Warehouse) -> None:
    store(
        warehouse,
        latency([1 * MS] * 8, key=CART),
        latency([90 * MS, 95 * MS], key=("cart", "GET /cart", "SERVER", "error"), errors=2),
        latency([3 * MS] * 10, window=1, key=CART),
    )
    (summary,) = latency_summary(warehouse, "cart", "GET /cart", SINCE, UNTIL)
    assert (summary.calls, summary.errors) == (20, 2)
    assert summary.error_rate == pytest.approx(0.1)
    assert summary.max_ns == 95 * MS


def test_slowest_traces_are_distinct_and_slowest_first(warehouse: Warehouse) -> None:
    store(
        warehouse,
        latency([10 * MS, 20 * MS, 30 * MS], window=0),
        latency([25 * MS, 30 * MS, 5 * MS, 7 * MS], window=1),  # 30 ms: the same trace again
        latency([40 * MS, 1 * MS], window=2),
    )
    (summary,) = latency_summary(warehouse, "cart", None, SINCE, UNTIL)
    assert summary.slowest == tuple(
        SlowTrace(trace_id(d), d) for d in (40 * MS, 30 * MS, 25 * MS, 20 * MS, 10 * MS)
    )
    assert len(summary.slowest) == SLOWEST_TRACES


def test_slow_trace_ids_are_each_windows_slowest_of_the_operation(warehouse: Warehouse) -> None:
    store(
        warehouse,
        latency([10 * MS, 20 * MS, 30 * MS], window=0),
        latency([25 * MS], window=0, key=("cart", "GET /cart", "SERVER", "error"), errors=1),
        latency([99 * MS], window=0, key=("cart", "GET /cart", "CLIENT", "ok")),
        latency([500 * MS], window=0, key=("cart", "POST /cart", "SERVER", "ok")),  # other op
        latency([5 * MS, 7 * MS], window=1),
        latency([30 * MS], window=2),  # the same trace as window 0's 30 ms: listed once
        latency([1 * MS], window=3),  # after the range
    )
    got = slow_trace_ids(warehouse, "cart", "GET /cart", SINCE, T0 + 3 * WINDOW_NS, 2)
    # Every kind and status class of the operation, window by window, slowest first.
    assert got == [trace_id(d) for d in (99 * MS, 30 * MS, 7 * MS, 5 * MS)]
    assert slow_trace_ids(warehouse, "cart", "GET /cart", SINCE, UNTIL, 0) == []
    assert slow_trace_ids(warehouse, "cart", "it's", SINCE, UNTIL, 5) == []


def test_service_operation_and_range_filter(warehouse: Warehouse) -> None:
    store(
        warehouse,
        latency([1 * MS], key=("cart", "GET /cart", "SERVER", "ok")),
        latency([2 * MS], key=("cart", "SELECT", "CLIENT", "ok")),
        latency([3 * MS], key=("cart", "GET /cart", "CLIENT", "ok")),
        latency([4 * MS], key=("web", "GET /", "SERVER", "ok")),
        latency([5 * MS], window=-1),  # before the range
        latency([6 * MS], window=100),  # starts at UNTIL: after it
    )
    cart = latency_summary(warehouse, "cart", None, SINCE, UNTIL)
    assert [(s.operation, s.kind, s.max_ns) for s in cart] == [
        ("GET /cart", "Client", 3 * MS),
        ("GET /cart", "Server", 1 * MS),
        ("SELECT", "Client", 2 * MS),
    ]
    only = latency_summary(warehouse, "cart", "SELECT", SINCE, UNTIL)
    assert [s.operation for s in only] == ["SELECT"]
    assert latency_summary(warehouse, "cart", "GET /'quoted'", SINCE, UNTIL) == []
    assert latency_summary(warehouse, "nobody", None, SINCE, UNTIL) == []
    next_window = latency_summary(warehouse, "cart", None, UNTIL, UNTIL + WINDOW_NS)
    assert [s.max_ns for s in next_window] == [6 * MS]
    assert latency_summary(warehouse, "cart", None, UNTIL + WINDOW_NS, UNTIL + 2 * WINDOW_NS) == []
    every = latency_summary(warehouse, None, None, SINCE, UNTIL)
    assert [(s.service, s.operation, s.kind) for s in every] == [
        ("cart", "GET /cart", "Client"),
        ("cart", "GET /cart", "Server"),
        ("cart", "SELECT", "Client"),
        ("web", "GET /", "Server"),
    ]
    # Exemplars stay with their own service's operation.
    assert every[3].slowest == (SlowTrace(trace_id(4 * MS), 4 * MS),)
    assert every[1].slowest == (SlowTrace(trace_id(1 * MS), 1 * MS),)


def test_dependency_summary_merges_an_edges_windows(warehouse: Warehouse) -> None:
    store(
        warehouse,
        edge([10 * MS] * 9 + [200 * MS], "web", "cart", errors=1),
        edge([1 * MS] * 5, "cart", "postgresql", "database"),
    )
    later: Any = edge([20 * MS] * 10, "web", "cart")
    later["window_start_unix_nano"] += WINDOW_NS
    later["window_end_unix_nano"] += WINDOW_NS
    store(warehouse, later)
    cart_db, web_cart = dependency_summary(warehouse, SINCE, UNTIL)
    assert (cart_db.client, cart_db.server, cart_db.connection_type) == (
        "cart",
        "postgresql",
        "database",
    )
    assert (web_cart.calls, web_cart.errors, web_cart.windows) == (20, 1, 2)
    assert web_cart.error_rate == pytest.approx(0.05)
    everything = LatencySketch()
    everything.add_many([10 * MS] * 9 + [200 * MS] + [20 * MS] * 10)
    assert web_cart.p50_ns == everything.quantile(0.5)
    assert web_cart.p99_ns == everything.quantile(0.99)
    assert dependency_summary(warehouse, UNTIL, UNTIL + WINDOW_NS) == []


def test_windows_of_two_accuracies_are_refused(warehouse: Warehouse) -> None:
    coarse = latency([1 * MS], window=1)
    coarse["sketch"]["relative_accuracy"] = 0.02
    store(warehouse, latency([1 * MS]), coarse)
    with pytest.raises(TracepipeError, match=r"relative accuracies 0\.01 and 0\.02"):
        latency_summary(warehouse, "cart", None, SINCE, UNTIL)


class Unmigrated:
    """A reader on a warehouse without the window tables."""

    def query_dicts(self, sql: str) -> list[dict[str, Any]]:
        if "system.tables" in sql:
            return [{"n": 0}]
        raise WarehouseError("Table default.tracepipe_latency does not exist")


def test_a_missing_table_says_to_migrate() -> None:
    with pytest.raises(WarehouseError, match="tracepipe db migrate"):
        latency_summary(Unmigrated(), "cart", None, SINCE, UNTIL)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", 10**18),
        ("90s", 10**18 - 90 * 10**9),
        ("1h30m", 10**18 - 5_400 * 10**9),
        ("2d", 10**18 - 172_800 * 10**9),
        ("2026-01-02T03:04:05Z", 1_767_323_045 * 10**9),
        ("2026-01-02T03:04:05", 1_767_323_045 * 10**9),
        ("2026-01-02T04:04:05.5+01:00", 1_767_323_045_500_000_000),
    ],
)
def test_parse_time(text: str, expected: int) -> None:
    assert parse_time(text, 10**18) == expected


@pytest.mark.parametrize("text", ["", "1.5h", "90", "1 h", "yesterday"])
def test_parse_time_names_the_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration ago \(90s"):
        parse_time(text, 10**18)


@pytest.fixture
def cli_env(chdb_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACEPIPE_CLICKHOUSE_URL", chdb_url)
    monkeypatch.setenv("TRACEPIPE_WORKER_WEB_PORT", str(free_port()))  # no worker answers


@pytest.mark.usefixtures("cli_env")
def test_cli_latency_prints_a_table(
    warehouse: Warehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    store(
        warehouse,
        latency([2 * MS, 4 * MS, 120 * MS]),
        latency([3 * MS], key=("cart", "GET /cart", "SERVER", "error"), errors=1),
    )
    assert main(["query", "latency", "--service", "cart", "--since", "1h"]) == 0
    title, header, _rule, row = capsys.readouterr().out.splitlines()
    assert title.startswith("latency windows for service 'cart' between ")
    assert "; rates over 10s of data, " in title
    assert header.split() == [
        "service", "operation", "kind", "calls", "errors", "err%", "rate/s",
        "p50", "ms", "p90", "ms", "p95", "ms", "p99", "ms", "max", "ms", "slowest", "trace",
    ]  # fmt: skip
    assert row.split()[:8] == ["cart", "GET", "/cart", "Server", "4", "1", "25.0", "0.400"]
    assert row.split()[-2:] == ["120", trace_id(120 * MS)]


@pytest.mark.usefixtures("cli_env")
def test_cli_deps_prints_edges(warehouse: Warehouse, capsys: pytest.CaptureFixture[str]) -> None:
    store(warehouse, edge([10 * MS] * 4, "web", "cart"), edge([MS], "cart", "kafka", "database"))
    assert main(["query", "deps", "--since", "2h", "--until", "now"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("service-graph edges between ")
    assert "; rates over 10s of data, " in lines[0]
    assert [line.split()[:5] for line in lines[3:]] == [
        ["cart", "->", "kafka", "database", "1"],
        ["web", "->", "cart", "-", "4"],
    ]


@pytest.mark.usefixtures("cli_env")
def test_cli_says_when_the_range_is_empty(
    warehouse: Warehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    store(warehouse, latency([MS]))
    assert main(["query", "latency", "--service", "cart", "--since", "10m"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("no latency windows for service 'cart' between ")
    assert "windows appear after window + allowed lateness (10 s + 30 s), from this " in out
    assert main(["query", "deps", "--since", "10m"]) == 1
    assert "edges appear after trace idle" in capsys.readouterr().out


def test_cli_rejects_bad_times(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["query", "deps", "--since", "yesterday"])
    assert exit_info.value.code == 2
    assert "invalid time 'yesterday'" in capsys.readouterr().err
    assert main(["query", "deps", "--since", "1h", "--until", "2h"]) == 2
    assert "is not before --until" in capsys.readouterr().err


@pytest.mark.parametrize("what", ["latency", "deps"])
def test_cli_help(what: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["query", what, "--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "merged" in out and "--since" in out and "Exit 1" in out


def test_format_time() -> None:
    assert format_time(1_767_323_045_999_999_999) == "2026-01-02 03:04:05Z"
