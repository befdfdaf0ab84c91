"""WindowMerger: final windows once every source has closed them; once; duplicates ignored."""

from __future__ import annotations

import random
from typing import Any

from streams.aggregate.merge import (
    WindowMerger,
    final_record,
    partial_record,
    watermark_record,
)
from streams.aggregate.observations import LATENCY_DIMENSIONS
from streams.aggregate.window import Observation, WindowAggregator
from streams.model.codec import AvroCodec

MS = 1_000_000
S = 1_000 * MS
T0 = 1_700_000_000 * S
NOW = T0 + 200 * S  # the worker's wall clock, past every event time here
CODEC = AvroCodec("window_partial")


def aggregator() -> WindowAggregator:
    return WindowAggregator(10_000, 0, 3_600_000, 0.01, 3)


def through_avro(record: dict[str, Any]) -> dict[str, Any]:
    decoded: dict[str, Any] = CODEC.decode(CODEC.encode(record))
    return decoded


def workload(n: int, seed: int = 7) -> list[Observation]:
    rng = random.Random(seed)
    services = ["cart", "payment", "shipping"]
    out = []
    for i in range(n):
        service = rng.choice(services)
        status = "error" if rng.random() < 0.1 else "ok"
        out.append(
            Observation(
                T0 + rng.randrange(0, 30 * S),
                int(rng.lognormvariate(16, 1)),
                (service, "GET /" + service, "SERVER", status),
                status == "error",
                f"{i:032x}",
                f"{i:016x}",
            )
        )
    return out


def run(
    observations: list[Observation], sources: int, merge_partitions: int
) -> list[dict[str, Any]]:
    """Aggregate per source partition, ship records through Avro, merge; final records."""
    agg = aggregator()
    for source in range(sources):
        agg.add(source, [o for i, o in enumerate(observations) if i % sources == source], NOW)
    # Every source closes everything: one observation far ahead per source.
    for source in range(sources):
        agg.add(
            source, [Observation(T0 + 100 * S, 1, ("flush", "", "", "ok"), False, "f", "f")], NOW
        )
    closed, marks = agg.close_due(range(sources), NOW)
    merger = WindowMerger(sources, 3)
    for window in closed:
        target = hash(window.key) % merge_partitions
        merger.add(target, through_avro(partial_record(window)))
    for source, through in marks.items():
        for target in range(merge_partitions):
            merger.add(target, through_avro(watermark_record(source, through)))
    final = merger.take_final()
    return [final_record(w, LATENCY_DIMENSIONS, 0) for w in final]


def by_key(records: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {(r["window_start_unix_nano"], r["service"], r["status_class"]): r for r in records}


def test_merged_windows_equal_a_single_partition_result() -> None:
    observations = workload(3_000)
    single = by_key(run(observations, sources=1, merge_partitions=1))
    merged = by_key(run(observations, sources=6, merge_partitions=4))
    assert single.keys() == merged.keys() and len(single) == 3 * 3 * 2
    for key, want in single.items():
        got = merged[key]
        for field in ("count", "errors", "sum_ns", "min_ns", "max_ns", "p50_ns", "p99_ns"):
            assert got[field] == want[field], (key, field)
        assert got["sketch"] == want["sketch"]
        assert got["exemplars"] == want["exemplars"]
    assert sum(r["count"] for r in merged.values()) == 3_000


def test_a_window_is_final_only_when_every_source_has_closed_it() -> None:
    agg = aggregator()
    agg.add(0, [Observation(T0 + S, 5, ("a", "op", "SERVER", "ok"), False, "t", "s")], NOW)
    agg.add(0, [Observation(T0 + 15 * S, 5, ("a", "op", "SERVER", "ok"), False, "t", "s")], NOW)
    closed, _ = agg.close_due([0], NOW)
    merger = WindowMerger(source_partitions=2, exemplar_count=3)
    merger.add(0, partial_record(closed[0]))
    merger.add(0, watermark_record(0, T0 + 10 * S))
    assert merger.take_final() == []  # source 1 has not reported
    merger.add(1, watermark_record(1, T0 + 10 * S))  # another merge partition's view
    assert merger.take_final() == []
    merger.add(0, watermark_record(1, T0 + 10 * S))
    final = merger.take_final()
    assert [(w.key, w.stats.count, w.sources) for w in final] == [
        (("a", "op", "SERVER", "ok"), 1, 1)
    ]
    merger.add(0, watermark_record(0, T0 + 20 * S))
    merger.add(0, watermark_record(1, T0 + 20 * S))
    assert merger.take_final() == []  # emitted once


def test_redelivered_and_late_partials_are_counted_not_merged() -> None:
    agg = aggregator()
    agg.add(0, [Observation(T0 + S, 5, ("a", "op", "SERVER", "ok"), False, "t", "s")], NOW)
    agg.add(0, [Observation(T0 + 15 * S, 5, ("b", "op", "SERVER", "ok"), False, "t", "s")], NOW)
    closed, _ = agg.close_due([0], NOW)
    record = partial_record(closed[0])
    merger = WindowMerger(source_partitions=1, exemplar_count=3)
    merger.add(0, record)
    merger.add(0, record)
    merger.add(0, watermark_record(0, T0 + 10 * S))
    final = merger.take_final()
    assert final[0].stats.count == 1
    merger.add(0, record)
    assert merger.take_final() == []
    counts = merger.take_counts()
    assert (counts.duplicate_partials, counts.late_partials) == (1, 1)


def test_final_record_fields() -> None:
    records = run(workload(500), sources=2, merge_partitions=2)
    for r in records:
        assert r["error_rate"] == r["errors"] / r["count"]
        assert r["throughput_per_s"] == r["count"] / 10
        # Within the calls' exact min and max, not just the sketch's 1% of them.
        assert r["min_ns"] <= r["p50_ns"] and r["p99_ns"] <= r["max_ns"]
        assert r["p50_ns"] <= r["p90_ns"] <= r["p95_ns"] <= r["p99_ns"]
        assert r["window_end_unix_nano"] - r["window_start_unix_nano"] == 10 * S
    codec = AvroCodec("latency")
    assert codec.decode(codec.encode(records[0]))["count"] == records[0]["count"]
