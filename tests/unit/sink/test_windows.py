"""Final windows become tracepipe_latency / tracepipe_edges rows that chDB stores and reads back,
and a window stored twice is one row."""

from __future__ import annotations

import time
from typing import cast

from streams.aggregate.merge import FinalWindow, final_record
from streams.aggregate.observations import EDGE_DIMENSIONS, LATENCY_DIMENSIONS
from streams.aggregate.records import EdgeWindowRecord, LatencyWindowRecord
from streams.aggregate.sketch import LatencySketch
from streams.aggregate.stats import Exemplar, WindowStats, window_stats
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
# An aligned window an hour ago: rows must be younger than the TTL or the engine drops them.
T0 = (time.time_ns() - 3_600_000_000_000) // WINDOW_NS * WINDOW_NS
CART = ("cart", "GET /cart", "SERVER", "ok")


def stats(durations_ns: list[int], errors: int = 0) -> WindowStats:
    slow = sorted(durations_ns, reverse=True)[:2]
    exemplars = [Exemplar(d, f"{i + 1:032x}", f"{i + 1:016x}") for i, d in enumerate(slow)]
    return window_stats(durations_ns, errors, exemplars, 0.01)


def latency_record(
    durations_ns: list[int], start_ns: int = T0, emitted_at_ns: int = T0 + 1
) -> LatencyWindowRecord:
    window = FinalWindow(start_ns, start_ns + WINDOW_NS, CART, stats(durations_ns), 1)
    return cast(LatencyWindowRecord, final_record(window, LATENCY_DIMENSIONS, emitted_at_ns))


def edge_record(durations_ns: list[int]) -> EdgeWindowRecord:
    window = FinalWindow(T0, T0 + WINDOW_NS, ("web", "cart", ""), stats(durations_ns, 1), 1)
    return cast(EdgeWindowRecord, final_record(window, EDGE_DIMENSIONS, T0 + 1))


def test_latency_row_maps_every_field() -> None:
    record = latency_record([1_000, 3_000_000, 2_000_000])
    row = dict(zip(LATENCY_COLUMNS, latency_row(record), strict=True))
    assert row["WindowStart"] == T0 and row["WindowEnd"] == T0 + WINDOW_NS
    assert (row["ServiceName"], row["SpanName"], row["StatusClass"]) == ("cart", "GET /cart", "ok")
    assert row["SpanKind"] == "Server"  # as otel_traces writes SERVER
    assert (row["Count"], row["DurationSum"], row["DurationMax"]) == (3, 5_001_000, 3_000_000)
    assert row["SketchKeys"] == record["sketch"]["keys"]
    assert row["ExemplarDurations"] == [3_000_000, 2_000_000]
    assert row["ExemplarTraceIds"] == [f"{1:032x}", f"{2:032x}"]
    assert row["EmittedAt"] == T0 + 1


def test_rows_round_trip_through_chdb(window_tables: Warehouse) -> None:
    latency = latency_record([0, 1_500, 2_500_000, 40_000_000])
    edge = edge_record([5_000_000, 7_000_000])
    window_tables.insert(LATENCY, LATENCY_COLUMNS, [latency_row(latency)])
    window_tables.insert(EDGES, EDGES_COLUMNS, [edge_row(edge)])
    (stored,) = window_tables.query_dicts(f"SELECT * FROM {LATENCY}")
    assert tuple(stored) == LATENCY_COLUMNS
    assert tuple(stored.values()) == latency_row(latency)
    (stored_edge,) = window_tables.query_dicts(f"SELECT * FROM {EDGES}")
    assert tuple(stored_edge) == EDGES_COLUMNS
    assert tuple(stored_edge.values()) == edge_row(edge)
    assert (stored_edge["Client"], stored_edge["Server"], stored_edge["ErrorRate"]) == (
        "web",
        "cart",
        0.5,
    )
    sketch = LatencySketch.from_bins(
        stored["SketchRelativeAccuracy"],
        stored["SketchZeroCount"],
        stored["SketchKeys"],
        stored["SketchCounts"],
    )
    assert sketch.count == 4 and sketch.quantile(0.99) == latency["p99_ns"]


def test_a_window_stored_twice_is_one_row_with_final(window_tables: Warehouse) -> None:
    record = latency_record([1_000_000, 2_000_000])
    for _ in range(2):  # a redelivered message: the same window, inserted again
        window_tables.insert(LATENCY, LATENCY_COLUMNS, [latency_row(record)])
        window_tables.insert(EDGES, EDGES_COLUMNS, [edge_row(edge_record([1_000]))])
    assert window_tables.query(f"SELECT count(), sum(Count) FROM {LATENCY} FINAL") == [(1, 2)]
    assert window_tables.query(f"SELECT count() FROM {EDGES} FINAL") == [(1,)]
    # Another window of the same key stays a row of its own.
    later = latency_record([5_000_000], start_ns=T0 + WINDOW_NS)
    window_tables.insert(LATENCY, LATENCY_COLUMNS, [latency_row(later)])
    assert window_tables.query(f"SELECT count(), sum(Count) FROM {LATENCY} FINAL") == [(2, 3)]


def test_the_latest_emission_of_a_window_wins(window_tables: Warehouse) -> None:
    newer = latency_record([1_000_000, 2_000_000, 3_000_000], emitted_at_ns=T0 + 2)
    older = latency_record([1_000_000], emitted_at_ns=T0 + 1)
    window_tables.insert(LATENCY, LATENCY_COLUMNS, [latency_row(newer)])
    window_tables.insert(LATENCY, LATENCY_COLUMNS, [latency_row(older)])  # redelivered late
    assert window_tables.query(f"SELECT Count FROM {LATENCY} FINAL") == [(3,)]


def test_the_tables_have_a_ttl(migrated_warehouse: Warehouse) -> None:
    warehouse = migrated_warehouse
    for table in (LATENCY, EDGES):
        ddl = warehouse.query(f"SHOW CREATE TABLE {table}")[0][0]
        assert "TTL toDateTime(WindowStart) + toIntervalDay(7)" in ddl
        assert "ReplacingMergeTree(EmittedAt)" in ddl


def test_column_lists_name_every_column(migrated_warehouse: Warehouse) -> None:
    warehouse = migrated_warehouse
    for table, columns in ((LATENCY, LATENCY_COLUMNS), (EDGES, EDGES_COLUMNS)):
        names = warehouse.query(
            f"SELECT name FROM system.columns WHERE database = currentDatabase() "
            f"AND table = '{table}' ORDER BY position"
        )
        assert tuple(n for (n,) in names) == columns
