"""Phase two of the aggregation: merge the partials of every source partition into final windows.

Partials reach a merge partition keyed by their window key; every source partition also sends
its closed-through watermark to every merge partition, after its partials. A merge partition's
window is final once every source partition's watermark, as seen on that merge partition, has
passed its end; it is then emitted once and forgotten. Watermarks are tracked per merge
partition because only there does Kafka order a source's partials before its watermark.

A partial for a window already emitted is late (counted); a second partial from the same source
for the same window and key is a redelivery (counted, ignored), so a replayed partial cannot
double-count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.aggregate.sketch import LatencySketch, SketchRecord
from streams.aggregate.stats import Exemplar, WindowStats
from streams.aggregate.window import ClosedWindow, WindowKey

PARTIAL = "partial"
WATERMARK = "watermark"

QUANTILES = (("p50_ns", 0.5), ("p90_ns", 0.9), ("p95_ns", 0.95), ("p99_ns", 0.99))
"""The percentiles every final window reports, by field name."""

PERCENTILE_SIGNALS = {field.removesuffix("_ns"): q for field, q in QUANTILES}
"""The same percentiles by signal name (p50, p90, p95, p99), as alert rules name them."""


def partial_record(closed: ClosedWindow) -> dict[str, Any]:
    """The WindowPartial Avro record (schemas/avro/window_partial.avsc) of a closed window."""
    stats = closed.stats
    return {
        "type": PARTIAL,
        "source_partition": closed.source_partition,
        "closed_through_unix_nano": 0,
        "window_start_unix_nano": closed.window_start_unix_nano,
        "window_end_unix_nano": closed.window_end_unix_nano,
        "key": list(closed.key),
        "count": stats.count,
        "errors": stats.errors,
        "sum_ns": stats.sum_ns,
        "min_ns": stats.min_ns,
        "max_ns": stats.max_ns,
        "sketch": stats.sketch.to_record(),
        "exemplars": [e._asdict() for e in stats.exemplars],
    }


def watermark_record(source_partition: int, closed_through_unix_nano: int) -> dict[str, Any]:
    """The WindowPartial Avro record announcing a source partition's closed-through time."""
    return {
        "type": WATERMARK,
        "source_partition": source_partition,
        "closed_through_unix_nano": closed_through_unix_nano,
        "window_start_unix_nano": 0,
        "window_end_unix_nano": 0,
        "key": [],
        "count": 0,
        "errors": 0,
        "sum_ns": 0,
        "min_ns": 0,
        "max_ns": 0,
        "sketch": LatencySketch().to_record(),
        "exemplars": [],
    }


def stats_from_partial(record: dict[str, Any]) -> WindowStats:
    """The WindowStats a partial record carries."""
    sketch_record: SketchRecord = record["sketch"]
    return WindowStats(
        sketch=LatencySketch.from_record(sketch_record),
        count=record["count"],
        errors=record["errors"],
        sum_ns=record["sum_ns"],
        min_ns=record["min_ns"],
        max_ns=record["max_ns"],
        exemplars=[
            Exemplar(e["duration_ns"], e["trace_id"], e["span_id"]) for e in record["exemplars"]
        ],
    )


@dataclass(frozen=True)
class FinalWindow:
    """A window every source partition has closed: the merged stats of one key."""

    window_start_unix_nano: int
    window_end_unix_nano: int
    key: WindowKey
    stats: WindowStats
    sources: int
    merge_partition: int = 0


def final_record(
    window: FinalWindow, dimensions: Sequence[str], emitted_at_unix_nano: int
) -> dict[str, Any]:
    """The output record (latency.avsc or edge.avsc, by `dimensions`) of a final window."""
    stats = window.stats
    seconds = (window.window_end_unix_nano - window.window_start_unix_nano) / 1e9
    record: dict[str, Any] = dict(zip(dimensions, window.key, strict=True))
    record.update(
        window_start_unix_nano=window.window_start_unix_nano,
        window_end_unix_nano=window.window_end_unix_nano,
        count=stats.count,
        errors=stats.errors,
        error_rate=stats.errors / stats.count if stats.count else 0.0,
        throughput_per_s=stats.count / seconds if seconds > 0 else 0.0,
        sum_ns=stats.sum_ns,
        min_ns=stats.min_ns,
        max_ns=stats.max_ns,
        sketch=stats.sketch.to_record(),
        exemplars=[e._asdict() for e in stats.exemplars],
        emitted_at_unix_nano=emitted_at_unix_nano,
    )
    for name, q in QUANTILES:
        record[name] = stats.quantile(q)
    return record


@dataclass
class _MergePartition:
    """The pending windows and per-source watermarks of one merge partition."""

    watermarks: dict[int, int] = field(default_factory=dict)
    pending: dict[tuple[int, int, WindowKey], tuple[WindowStats, set[int]]] = field(
        default_factory=dict
    )
    emitted_through_ns: int = 0


@dataclass
class MergeCounts:
    """What the merger did with its input since the last take."""

    late_partials: int = 0
    duplicate_partials: int = 0


class WindowMerger:
    """Combines per-source partials into final windows once all sources have closed them."""

    def __init__(self, source_partitions: int, exemplar_count: int) -> None:
        self.source_partitions = source_partitions
        self.exemplar_count = exemplar_count
        self.counts = MergeCounts()
        self._partitions: dict[int, _MergePartition] = {}

    def add(self, merge_partition: int, record: dict[str, Any]) -> int:
        """Take one WindowPartial record read from `merge_partition`; returns the end of the
        window it is now part of (its source record is needed until that window is
        published), or 0 when nothing waits on it (a watermark, late or duplicate)."""
        state = self._partitions.get(merge_partition)
        if state is None:
            state = self._partitions[merge_partition] = _MergePartition()
        source = record["source_partition"]
        if record["type"] == WATERMARK:
            mark = record["closed_through_unix_nano"]
            state.watermarks[source] = max(mark, state.watermarks.get(source, mark))
            return 0
        end: int = record["window_end_unix_nano"]
        if end <= state.emitted_through_ns:
            self.counts.late_partials += 1
            return 0
        slot = (record["window_start_unix_nano"], end, tuple(record["key"]))
        held = state.pending.get(slot)
        if held is None:
            state.pending[slot] = (stats_from_partial(record), {source})
            return end
        stats, sources = held
        if source in sources:
            self.counts.duplicate_partials += 1
            return 0
        sources.add(source)
        stats.merge(stats_from_partial(record), self.exemplar_count)
        return end

    def final_through(self, merge_partition: int) -> int:
        """The time before which every window of a merge partition is final (0: none yet)."""
        state = self._partitions.get(merge_partition)
        if state is None or len(state.watermarks) < self.source_partitions:
            return 0
        return min(state.watermarks.values())

    def take_final(self) -> list[FinalWindow]:
        """Every window that has become final since the last call, in window order."""
        final: list[FinalWindow] = []
        for merge_partition, state in sorted(self._partitions.items()):
            through = self.final_through(merge_partition)
            if through <= state.emitted_through_ns:
                continue
            due = sorted(slot for slot in state.pending if slot[1] <= through)
            for slot in due:
                stats, sources = state.pending.pop(slot)
                final.append(
                    FinalWindow(slot[0], slot[1], slot[2], stats, len(sources), merge_partition)
                )
            state.emitted_through_ns = through
        return final

    def emitted_through(self) -> dict[int, int]:
        """Per merge partition, the end before which every window has been taken as final."""
        return {p: state.emitted_through_ns for p, state in self._partitions.items()}

    def resume(self, merge_partition: int, emitted_through_ns: int) -> None:
        """Start a merge partition from a durable emitted-through mark (after a rebalance or
        restart): partials of windows ending at or before it are late, not published again."""
        state = self._partitions.get(merge_partition)
        if state is None:
            state = self._partitions[merge_partition] = _MergePartition()
        state.emitted_through_ns = max(state.emitted_through_ns, emitted_through_ns)

    def reset(self) -> None:
        """Forget every merge partition (a rebalance: each is re-read from its committed
        offset)."""
        self._partitions.clear()

    def release(self, merge_partitions: Sequence[int]) -> None:
        """Forget merge partitions this worker no longer owns."""
        for partition in merge_partitions:
            self._partitions.pop(partition, None)

    def pending_count(self) -> int:
        """Windows waiting for some source's watermark."""
        return sum(len(s.pending) for s in self._partitions.values())

    def take_counts(self) -> MergeCounts:
        """What happened since the last call (late and duplicate partials)."""
        counts, self.counts = self.counts, MergeCounts()
        return counts
