"""Window state across a crash or rebalance: held source records and partials, re-read from the
committed offsets, rebuild exactly the windows an uninterrupted run publishes.

A small model of the two topics and their committed offsets drives the real WindowAggregator,
WindowMerger and SourceHold the way the agents do (streams/worker/windows.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from streams.aggregate.merge import WindowMerger, final_record, partial_record, watermark_record
from streams.aggregate.observations import LATENCY_DIMENSIONS
from streams.aggregate.window import Observation, WindowAggregator
from streams.hold import SourceHold, published_through

S = 1_000_000_000
T0 = 1_700_000_000 * S
NOW = T0 + 10_000 * S
"""Wall clock, past every event time (a watermark never passes it)."""
SOURCES = 3
MERGE_PARTITIONS = 2


def source_records(seed: int) -> dict[int, list[list[Observation]]]:
    """Per source partition, records (span batches) in offset order, event time rising with
    some disorder, a few spans repeated (an SDK retry); one far-ahead record closes all."""
    rng = random.Random(seed)
    records: dict[int, list[list[Observation]]] = {p: [] for p in range(SOURCES)}
    for i in range(240):
        partition = rng.randrange(SOURCES)
        batch = []
        for j in range(rng.randint(1, 4)):
            end = T0 + i * S // 4 + rng.randrange(0, 3 * S)
            service = rng.choice(["cart", "payment"])
            batch.append(
                Observation(
                    end,
                    rng.randrange(1, 10**7),
                    (service, "op", "SERVER", "ok"),
                    False,
                    f"{i:032x}",
                    f"{j:016x}",
                )
            )
        if rng.random() < 0.1:
            batch.append(batch[0])
        records[partition].append(batch)
    for partition in range(SOURCES):
        flush = Observation(T0 + 500 * S, 1, ("flush", "", "", "ok"), False, "f", f"{partition}")
        records[partition].append([flush])
    return records


@dataclass
class Pipeline:
    """Both phases over modelled topics: what is committed survives a crash, nothing else."""

    sources: dict[int, list[list[Observation]]]
    committed: dict[int, int] = field(default_factory=lambda: dict.fromkeys(range(SOURCES), 0))
    partials: dict[int, list[dict[str, Any]]] = field(
        default_factory=lambda: {p: [] for p in range(MERGE_PARTITIONS)}
    )
    merge_committed: dict[int, int] = field(
        default_factory=lambda: dict.fromkeys(range(MERGE_PARTITIONS), 0)
    )
    marks: dict[int, int] = field(default_factory=dict)
    """The durable emitted-through mark per merge partition (its changelog table)."""
    published: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        """A crash or rebalance: memory is gone, reading resumes at the committed offsets."""
        self.aggregator = WindowAggregator(10_000, 2_000, 3_600_000, 0.01, 3)
        self.source_hold: SourceHold[tuple[int, int], int] = SourceHold()
        self.read = dict(self.committed)
        self.merger = WindowMerger(SOURCES, 3)
        self.partial_hold: SourceHold[tuple[int, int], int] = SourceHold()
        self.merge_read = dict(self.merge_committed)
        for merge_partition, through in self.marks.items():
            self.merger.resume(merge_partition, through)

    def consume(self, partition: int) -> bool:
        """The span agent: fold the next record of a partition and hold it."""
        offset = self.read[partition]
        if offset >= len(self.sources[partition]):
            return False
        folded = self.aggregator.add(partition, self.sources[partition][offset], NOW)
        self.source_hold.hold(partition, [(partition, offset)], folded.until_ns)
        self.read[partition] = offset + 1
        return True

    def emit(self) -> None:
        """The emit timer: partials then watermarks on the partials topic; release the held."""
        closed, marks = self.aggregator.close_due(range(SOURCES), NOW)
        for window in closed:
            target = hash(window.key) % MERGE_PARTITIONS
            self.partials[target].append(partial_record(window))
        for source, through in marks.items():
            for target in range(MERGE_PARTITIONS):
                self.partials[target].append(watermark_record(source, through))
        for source, through in marks.items():
            for _, offset in self.source_hold.release(source, published_through(through)):
                self.committed[source] = offset + 1

    def merge(self) -> None:
        """The merge agent: read partials, publish final windows, record marks, release."""
        for target in range(MERGE_PARTITIONS):
            topic = self.partials[target]
            while self.merge_read[target] < len(topic):
                offset = self.merge_read[target]
                until = self.merger.add(target, topic[offset])
                self.partial_hold.hold(target, [(target, offset)], until)
                self.merge_read[target] = offset + 1
        for window in self.merger.take_final():
            self.published.append(final_record(window, LATENCY_DIMENSIONS, 0))
        for target, through in self.merger.emitted_through().items():
            self.marks[target] = through
            for _, offset in self.partial_hold.release(target, published_through(through)):
                self.merge_committed[target] = offset + 1

    def run(self, crash_at: set[int]) -> list[dict[str, Any]]:
        """Consume round-robin, emitting and merging every few steps, restarting at the given
        steps; the windows as users read them (the last row per window and key)."""
        step = 0
        while any([self.consume(p) for p in range(SOURCES)]):
            step += 1
            if step % 5 == 0:
                self.emit()
            if step % 7 == 0:
                self.merge()
            if step in crash_at:
                self.restart()
        for _ in range(3):
            self.emit()
            self.merge()
        final: dict[tuple[Any, ...], dict[str, Any]] = {}
        for record in self.published:
            key = (record["window_start_unix_nano"], record["service"], record["operation"])
            final[key] = record
        return sorted(final.values(), key=lambda r: (r["window_start_unix_nano"], r["service"]))


def comparable(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (r["window_start_unix_nano"], r["service"], r["count"], r["sum_ns"], r["sketch"])
        for r in records
    ]


@pytest.mark.parametrize("seed", range(6))
def test_windows_survive_crashes_at_any_point(seed: int) -> None:
    records = source_records(seed)
    expected = Pipeline(records).run(set())
    assert sum(r["count"] for r in expected) > 200
    crashes = set(random.Random(seed).sample(range(1, 80), 4))
    assert comparable(Pipeline(records).run(crashes)) == comparable(expected)


def test_a_repeated_span_counts_once() -> None:
    records = source_records(1)
    spans = {o for batches in records.values() for batch in batches for o in batch}
    flushes = SOURCES  # the far-ahead records' windows never close
    windows = Pipeline(records).run(set())
    assert sum(r["count"] for r in windows) == len(spans) - flushes


def test_records_are_released_in_offset_order_only() -> None:
    hold: SourceHold[int, int] = SourceHold()
    hold.hold(0, [10], until=30)
    hold.hold(0, [11, 12], until=10)
    assert hold.release(0, published_through(20)) == []  # 11 and 12 are done, but 10 still waits
    assert hold.release(0, published_through(30)) == [10, 11, 12]
    hold.hold(1, [5], until=0)
    assert hold.held_count() == 1
    assert hold.drop() == 1
    assert hold.release(1, published_through(100)) == []
