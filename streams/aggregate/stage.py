"""One aggregated signal's stage (latency, edges or error origins): its aggregator and merger,
the records held until the windows they fed are published, and the generation each side works in.

The Faust edge (streams.worker.windows) feeds it observations, ticks its emit and hands it the
partials it merges; nothing here touches Faust.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from streams.aggregate.merge import WindowMerger
from streams.aggregate.window import Observation, ObservationBatch, WindowAggregator
from streams.config import AggregationConfig
from streams.hold import SourceHold
from streams.model.codec import AvroCodec
from streams.telemetry import Counters

log = logging.getLogger("tracepipe.aggregate")


@dataclass(frozen=True)
class Signal:
    """One aggregated signal: its name, window dimensions, source topic, output schema and
    ClickHouse table (the Faust topics it is published on are the edge's)."""

    name: str
    dimensions: Sequence[str]
    source_topic: str
    output_schema: str
    table: str
    columns: Sequence[str]
    row: Callable[[Any], tuple[Any, ...]]


class AggregationStage:
    """One signal's aggregator and merger, fed by a source agent and ticked by a timer."""

    def __init__(
        self,
        signal: Signal,
        config: AggregationConfig,
        partitions: int,
        counters: Counters,
        now: Callable[[], int],
        generation: Callable[[], int | None] = lambda: 0,
    ) -> None:
        self.signal = signal
        self.config = config
        self.partitions = partitions
        self.counters = counters
        self.now = now
        self.aggregator = WindowAggregator(
            config.window_ms,
            config.allowed_lateness_ms,
            config.partition_idle_ms,
            config.relative_accuracy,
            config.exemplars,
        )
        self.merger = WindowMerger(partitions, config.exemplars)
        self.partial_codec = AvroCodec("window_partial")
        self.output_codec = AvroCodec(signal.output_schema)
        self.generation = generation
        """The consumer group generation now (faust-streaming's, bumped by every rebalance);
        None while a rebalance is under way."""
        self.source_hold: SourceHold[Any, int] = SourceHold()
        self.partial_hold: SourceHold[Any, int] = SourceHold()
        self._sources_generation: int | None = None
        self._merge_generation: int | None = None
        self._last_emit_s: float | None = None
        self.read_through: dict[int, int] = {}
        """Per source partition, the offset after the last record observed since the latest
        rebalance (what this worker has read, for the idle rule)."""

    def sources_current(self) -> int | None:
        """The generation the source side works in (None during a rebalance); after a
        rebalance its windows and held records are forgotten first (every partition is
        re-read from its committed offset)."""
        generation = self.generation()
        if generation is not None and generation != self._sources_generation:
            self.aggregator.reset()
            self.read_through.clear()
            dropped = self.source_hold.drop()
            log.info(
                "%s: source windows start over in generation %s (was %s): %d held source "
                "records re-read",
                self.signal.name,
                generation,
                self._sources_generation,
                dropped,
            )
            self._sources_generation = generation
        return generation

    def merge_current(self, emitted_through: Callable[[], dict[int, int]]) -> int | None:
        """The generation the merge side works in (None during a rebalance); after a
        rebalance the merger starts again from each owned merge partition's durable
        emitted-through mark."""
        generation = self.generation()
        if generation is not None and generation != self._merge_generation:
            self.merger.reset()
            self.partial_hold.drop()
            for merge_partition, through in emitted_through().items():
                self.merger.resume(merge_partition, through)
            self._merge_generation = generation
        return generation

    def emitting(self) -> None:
        """Called as each emit starts. An emit that comes much later than due means this
        worker was cut off (its last one waited on an unreachable broker, or the loop stalled):
        restart the partitions' idle clocks, or the idle rule would close the windows of the
        records produced meanwhile before they arrive (and count them late)."""
        started = time.monotonic()
        last, self._last_emit_s = self._last_emit_s, started
        gap_ms = (started - last) * 1000 if last is not None else 0.0
        if gap_ms > self.config.partition_idle_ms:
            self.aggregator.restart_idle_clocks(self.now())
            log.warning(
                "%s: windows not emitted for %.1f s (broker unreachable or worker stalled): "
                "idle partitions wait another aggregation.partition_idle_ms before closing",
                self.signal.name,
                gap_ms / 1000,
            )

    def unchanged(self, generation: int | None) -> bool:
        """True if no rebalance began since `generation` was read: held records may be
        released (acknowledged)."""
        return generation is not None and self.generation() == generation

    def gauges(self) -> dict[str, int]:
        """What the stage holds now: open windows, windows awaiting a source, and the records
        kept uncommitted until their windows are published."""
        return {
            "open_windows": self.aggregator.open_window_count(),
            "pending_windows": self.merger.pending_count(),
            "held_source_records": self.source_hold.held_count(),
            "held_partials": self.partial_hold.held_count(),
        }

    def progress(self) -> dict[str, Any]:
        """Per source partition, what decides when its held records are released: the offset
        read through, the closed-through time and the held records (for /api/stats)."""
        return {
            "read_through": dict(sorted(self.read_through.items())),
            "closed_through_ns": self.aggregator.closed_through(),
            "held": self.source_hold.held_by_partition(),
            "held_partials": self.partial_hold.held_by_partition(),
        }

    def observe(
        self,
        partition: int,
        observations: ObservationBatch | Iterable[Observation],
        messages: Sequence[Any] = (),
    ) -> None:
        """Fold one source partition's observations into its open windows; its messages are
        held (one more reference each) until those windows' partials are published."""
        self.sources_current()
        folded = self.aggregator.add(partition, observations, self.now())
        for message in messages:
            message.incref()
        self.source_hold.hold(partition, messages, folded.until_ns)
        if messages:
            self.read_through[partition] = messages[-1].offset + 1
        if folded.duplicates:
            self.counters.inc(f"tracepipe_{self.signal.name}_duplicates_total", folded.duplicates)
        late = self.aggregator.take_late()
        for first_dimension, count in late.items():
            self.counters.inc(
                f"tracepipe_{self.signal.name}_late_total", count, service=first_dimension
            )
            log.warning(
                "%d %s observations of %s arrived after their window closed "
                "(aggregation.allowed_lateness_ms=%d): counted as late, not aggregated",
                count,
                self.signal.name,
                first_dimension,
                self.config.allowed_lateness_ms,
            )
