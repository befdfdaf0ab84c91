"""Error-origin windows: per window and service/operation where errors were seen, how many traces
erred there and where their errors originated (`origin_observations`, folded and merged as every
aggregated signal is).

The golden traces are the error-origin goldens (tests/testdata/assemble/error_origins/*.json):
their `seen_at` rows are `[service, operation, origin ("service/operation", or "*" for the row of
every origin), the span whose end time the row has]`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streams.aggregate.merge import WindowMerger, final_record, partial_record, watermark_record
from streams.aggregate.observations import ORIGIN_DIMENSIONS, origin_observations
from streams.aggregate.window import Observation, WindowAggregator, window_start
from streams.assemble.record import TraceRecord, build_trace_record
from streams.model.codec import AvroCodec
from streams.sink.windows import ERROR_ORIGIN_WINDOWS_COLUMNS, origin_window_row
from tests.unit.assemble.test_analysis_golden import BASE_NS, build_spans

GOLDEN = Path(__file__).resolve().parents[2] / "testdata" / "assemble" / "error_origins"
CASES = sorted(GOLDEN.glob("*.json"))
MS = 1_000_000
WINDOW_MS = 10_000
NOW = BASE_NS + 3_600_000 * MS  # the worker's wall clock, past every event time here
TRACES = AvroCodec("trace")
PARTIALS = AvroCodec("window_partial")
WINDOWS = AvroCodec("origin")


def golden(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((GOLDEN / f"{name}.json").read_text())
    return loaded


def record(name: str, trace: int = 1, version: int = 1, base_ns: int = BASE_NS) -> TraceRecord:
    """The golden trace `name` as its record, under trace id `trace` (times 1 ms per unit)."""
    spans = build_spans(golden(name)["spans"], f"{trace:032x}", base_ns, MS)
    return build_trace_record(
        spans, version=version, completion="complete", emitted_at_unix_nano=base_ns
    )


def test_the_goldens_have_seen_at_rows() -> None:
    assert all("seen_at" in json.loads(case.read_text()) for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_golden_seen_at(case: Path) -> None:
    expected = golden(case.stem)
    ends = {BASE_NS + row[5] * MS: row[0] for row in expected["spans"]}
    built = record(case.stem)
    # What the windows need travels in the record (trace.avsc v5): the same from a decoded one.
    decoded = TRACES.decode(TRACES.encode(built), TRACES.fingerprint)
    for observations in (origin_observations([built]), origin_observations([decoded])):
        found = sorted(
            [
                service,
                operation,
                f"{origin}/{origin_op}" if origin else "*",
                ends[o.end_time_unix_nano],
            ]
            for o in observations
            for service, operation, origin, origin_op in [o.key]
        )
        assert found == expected["seen_at"]
        assert all(o.error and o.trace_id == built["trace_id"] for o in observations)


def window_rows(
    by_source: dict[int, list[list[TraceRecord]]], merge_partitions: int = 2, now_ns: int = NOW
) -> list[tuple[Any, ...]]:
    """Fold each source partition's record batches, close (`now_ns` past every event time),
    ship partials through Avro, merge on `merge_partitions`: the final windows' rows of
    tracepipe_error_origin_windows, as the window sink stores them."""
    aggregator = WindowAggregator(WINDOW_MS, 0, 3_600_000, 0.01, 3)
    # An observation far ahead closes every window before it.
    flush = Observation(now_ns, 0, ("flush", "", "", ""), True, "f" * 32, "")
    for source, batches in by_source.items():
        for batch in batches:
            aggregator.add(source, origin_observations(batch), now_ns)
        aggregator.add(source, [flush], now_ns)
    closed, marks = aggregator.close_due(by_source, now_ns)
    merger = WindowMerger(len(by_source), 3)
    for window in closed:
        partial = PARTIALS.decode(PARTIALS.encode(partial_record(window)))
        merger.add(hash(window.key[:2]) % merge_partitions, partial)
    for source, through in marks.items():
        for target in range(merge_partitions):
            merger.add(target, PARTIALS.decode(PARTIALS.encode(watermark_record(source, through))))
    return [
        origin_window_row(
            WINDOWS.decode(WINDOWS.encode(final_record(final, ORIGIN_DIMENSIONS, now_ns)))
        )
        for final in merger.take_final()
        if final.key[0] != "flush"
    ]


def windows(
    by_source: dict[int, list[list[TraceRecord]]],
) -> dict[tuple[int, str, str, str, str], int]:
    """`window_rows` as {(window start, service, operation, origin service, origin operation):
    Traces}."""
    rows: dict[tuple[int, str, str, str, str], int] = {}
    for values in window_rows(by_source):
        row = dict(zip(ERROR_ORIGIN_WINDOWS_COLUMNS, values, strict=True))
        key = (
            row["WindowStart"],
            row["ServiceName"],
            row["SpanName"],
            row["OriginService"],
            row["OriginOperation"],
        )
        assert key not in rows
        rows[key] = row["Traces"]
        assert len(row["ExampleTraceIds"]) == min(3, row["Traces"])
    return rows


W0 = window_start(BASE_NS, WINDOW_MS * MS)


def test_traces_are_counted_per_operation_where_errors_were_seen_and_per_origin() -> None:
    mix = (
        [record("leaf_error_propagates", t) for t in range(1, 4)]
        + [record("two_independent_origins", t) for t in range(4, 6)]
        + [record("swallowed_midway", 6)]
        + [record("retries_succeed", t) for t in range(7, 11)]
        + [record("retries_exhausted", t) for t in range(11, 13)]
    )
    # Two source partitions (the traces' spans partitions), merged on two merge partitions.
    rows = windows({0: [mix[0::2]], 1: [mix[1::2]]})

    def traces(service: str, operation: str, origin: str = "", origin_op: str = "") -> int:
        return rows.get((W0, service, operation, origin, origin_op), 0)

    # A leaf error propagating up: seen at every error ancestor, originated at the leaf.
    assert traces("frontend", "POST /checkout") == 3 + 2
    assert traces("frontend", "POST /checkout", "inventory", "UPDATE stock") == 3
    assert traces("inventory", "Reserve", "inventory", "UPDATE stock") == 3
    assert traces("inventory", "UPDATE stock", "inventory", "UPDATE stock") == 3
    # Two independent origins: one trace each in both origins' rows, once in the total.
    assert traces("frontend", "POST /checkout", "payments", "Charge") == 2
    assert traces("frontend", "POST /checkout", "inventory", "Reserve") == 2
    assert traces("inventory", "Reserve") == 3 + 2
    assert traces("inventory", "Reserve", "inventory", "Reserve") == 2
    # Swallowed midway: seen in recs only, never at the frontend that handled it.
    assert traces("recs", "List", "recs", "model predict") == 1
    assert traces("frontend", "GET /product") == 0
    # Retries: traces, not attempts (two failed attempts of one trace count once); a retry
    # that succeeded leaves its caller's root out.
    assert traces("pricing", "GetPrice") == 4 + 2
    assert traces("pricing", "GetPrice", "pricing", "GetPrice") == 4 + 2
    assert traces("frontend", "GET /price", "pricing", "GetPrice") == 4 + 2
    assert traces("frontend", "GET /cart") == 2
    assert traces("frontend", "GET /cart", "pricing", "GetPrice") == 2
    assert all(start == W0 for start, *_ in rows)
    assert len(rows) == 26


def test_a_redelivered_or_re_emitted_trace_counts_once() -> None:
    first = [record("two_independent_origins", t) for t in range(1, 4)]
    again = [record("two_independent_origins", t, version=2) for t in range(1, 4)]
    once = windows({0: [first]})
    # The same records twice (a re-read after a crash), then their next versions (late spans
    # that changed nothing about the errors), in the window still open.
    assert windows({0: [first, first, again]}) == once
    assert once[(W0, "frontend", "POST /checkout", "", "")] == 3


def test_each_row_is_in_the_window_of_its_error_spans_end() -> None:
    # The leaf's spans end 10 and 2 ms before a window boundary, the frontend's at and after it:
    # the rows are in the latency windows of the spans where the errors were seen.
    boundary = W0 + WINDOW_MS * MS
    rows = windows({0: [[record("leaf_error_propagates", 1, base_ns=boundary - 80 * MS)]]})
    assert rows[(W0, "inventory", "UPDATE stock", "", "")] == 1
    assert rows[(W0, "inventory", "Reserve", "inventory", "UPDATE stock")] == 1
    assert rows[(boundary, "frontend", "reserve", "inventory", "UPDATE stock")] == 1
    assert rows[(boundary, "frontend", "POST /checkout", "", "")] == 1
    assert len(rows) == 8


def test_a_trace_without_errors_is_not_observed() -> None:
    assert origin_observations([record("no_errors")]) == []
