"""The aggregation stage's Faust wiring, the same for both signals (latency and edges).

source (span agent: latency; the assembly sweep: edges) ─ observe() ─> WindowAggregator
emit timer: closed partials (keyed by window key) + watermarks (to every partition)
    ──> <signal>-partials ──> merge agent: WindowMerger ──> final windows ──> <signal>
window sink agent: <signal> ──> ClickHouse (tracepipe_latency / tracepipe_edges)

Window state is in memory and made safe by holding (streams.hold): the source
records stay unacknowledged until the partials of every window they fed are on the partials
topic, and the partials until their final window is published and the merge partition's
emitted-through mark (table `tracepipe-<signal>-merge`) is on its changelog. A rebalance
(faust-streaming seeks every partition back to its committed offset) or a restart therefore
rebuilds every open window from re-read records; a re-read partial of a window already final
is dropped as late against the restored mark.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TP

from streams.aggregate.merge import (
    FinalWindow,
    WindowMerger,
    final_record,
    partial_record,
    watermark_record,
)
from streams.aggregate.window import Observation, WindowAggregator, WindowKey
from streams.config import AggregationConfig
from streams.hold import SourceHold, published_through
from streams.model.codec import SCHEMA_HEADER, AvroCodec
from streams.sink.writer import WarehouseWriter
from streams.telemetry import Counters
from streams.worker.batch import current_events, gone_stale, held, register_timer
from streams.worker.state import StateTable

log = logging.getLogger("tracepipe.aggregate")

MERGE_BATCH = 1000
MERGE_WAIT_S = 0.2
SINK_BATCH = 1000
SINK_WAIT_S = 0.5
_KEY_SEPARATOR = "/"


@dataclass(frozen=True)
class Signal:
    """One aggregated signal: its name, window dimensions, topics and ClickHouse table."""

    name: str
    dimensions: Sequence[str]
    source_topic: str
    partials_topic: faust.TopicT
    output_topic: faust.TopicT
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
        self, partition: int, observations: Iterable[Observation], messages: Sequence[Any] = ()
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


def routing_key(key: WindowKey) -> bytes:
    """The Kafka key of a window: its first two dimensions (service/operation, client/server),
    so every kind and status class of an operation meets on one partition (for alerting)."""
    return _KEY_SEPARATOR.join(key[:2]).encode()


def _owned(app: faust.App, topic: str) -> set[int]:
    assigned = app.assignor.assigned_actives()
    return {tp.partition for tp in assigned if tp.topic == topic}


def _behind(app: faust.App, topic: str, owned: set[int], read: dict[int, int]) -> set[int]:
    """Owned partitions with records on the broker this worker has not observed yet: after a
    rebalance (re-read from the committed offset) or a broker outage (the backlog arrives
    later), such a partition is not idle, however long it has been quiet."""
    consumer = app.consumer
    # Faust's committed offsets (refreshed by the seek every rebalance ends with): a partition
    # with nothing to re-read since then has read through its committed offset.
    committed: dict[Any, int | None] = getattr(consumer, "_committed_offset", {})
    behind = set()
    for partition in owned:
        tp = TP(topic, partition)
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # not fetched yet: nothing known about its backlog
            highwater = None
        if highwater is None:
            continue
        through = max(read.get(partition, 0), committed.get(tp) or 0)
        if through < highwater:
            behind.add(partition)
    return behind


FinalWindowsConsumer = Callable[[list[FinalWindow]], Awaitable[None]]
"""Called by the merge agent with each batch of final windows, after they are published."""


def register_aggregation(
    app: faust.App,
    stage: AggregationStage,
    writer: WarehouseWriter,
    counters: Counters,
    on_final: Sequence[FinalWindowsConsumer] = (),
) -> None:
    """Attach the emit timer, the merge agent (handing final windows to `on_final`, e.g. the
    alert stage) and the window sink agent of one signal."""
    signal = stage.signal
    name = signal.name
    partial_headers = [(SCHEMA_HEADER, stage.partial_codec.fingerprint.encode())]
    output_headers = [(SCHEMA_HEADER, stage.output_codec.fingerprint.encode())]
    counters.describe(f"tracepipe_{name}_late_total", f"{name} observations later than allowed.")
    counters.describe(f"tracepipe_{name}_partials_sent_total", "Closed per-partition partials.")
    counters.describe(f"tracepipe_{name}_windows_emitted_total", "Final windows published.")
    counters.describe(f"tracepipe_{name}_windows_stored_total", "Final windows stored.")
    counters.describe(
        f"tracepipe_{name}_partials_dropped_total",
        "Partials not merged: late (window already final) or duplicate (redelivered).",
    )

    counters.describe(
        f"tracepipe_{name}_duplicates_total",
        "Identical observations of one window (a span or trace version sent twice) folded once.",
    )
    # Per merge partition, the end before which every window is final and published: restored
    # after a rebalance or restart so a re-read partial cannot publish a window again.
    marks_table = StateTable(
        app,
        f"tracepipe-{name}-merge",
        stage.partitions,
        signal.partials_topic.get_topic_name(),
        partition_of=int,
    )

    def emitted_marks() -> dict[int, int]:
        marks = {}
        for merge_partition in marks_table.owned_partitions():
            raw = marks_table.get(str(merge_partition).encode())
            if raw is not None:
                marks[merge_partition] = int(raw)
        return marks

    async def emit() -> None:
        stage.emitting()
        generation = stage.sources_current()
        if generation is None:
            return
        owned = _owned(app, signal.source_topic)
        stage.aggregator.release([p for p in range(stage.partitions) if p not in owned])
        behind = _behind(app, signal.source_topic, owned, stage.read_through)
        closed, marks = stage.aggregator.close_due(owned, stage.now(), behind)
        deliveries = []
        for window in closed:
            deliveries.append(
                await signal.partials_topic.send(
                    key=routing_key(window.key),
                    value=stage.partial_codec.encode(partial_record(window)),
                    headers=partial_headers,
                )
            )
        # After the partials: Kafka orders them before the watermark on each merge partition.
        for source, through in marks.items():
            value = stage.partial_codec.encode(watermark_record(source, through))
            for target in range(stage.partitions):
                deliveries.append(
                    await signal.partials_topic.send(
                        key=None, value=value, partition=target, headers=partial_headers
                    )
                )
        await asyncio.gather(*deliveries)
        if closed:
            counters.inc(f"tracepipe_{name}_partials_sent_total", len(closed))
        if not stage.unchanged(generation):
            return  # rebalanced meanwhile: the held records are re-read, not acknowledged
        for source, through in marks.items():
            for message in stage.source_hold.release(source, published_through(through)):
                message.ack(app.consumer)

    register_timer(app, stage.config.emit_interval_ms / 1000, f"tracepipe.{name}-emit", emit)

    async def merge(stream: faust.StreamT[bytes]) -> None:
        # take_events exists on faust-streaming's Stream but not on its StreamT protocol.
        async for events in stream.take_events(  # type: ignore[attr-defined]
            MERGE_BATCH, within=MERGE_WAIT_S
        ):
            events = current_events(app, events)
            with held(app, events):
                generation = stage.merge_current(emitted_marks)
                for event in events:
                    message = event.message
                    record = stage.partial_codec.decode(message.value)
                    until = stage.merger.add(message.partition, record)
                    message.incref()
                    stage.partial_hold.hold(message.partition, (message,), until)
                if gone_stale(app, events):
                    continue  # the merger starts again from the marks
                final = stage.merger.take_final()
                deliveries = []
                emitted_at = stage.now()
                for window in final:
                    record = final_record(window, signal.dimensions, emitted_at)
                    deliveries.append(
                        await signal.output_topic.send(
                            key=routing_key(window.key),
                            value=stage.output_codec.encode(record),
                            headers=output_headers,
                        )
                    )
                await asyncio.gather(*deliveries)
                if final:
                    counters.inc(f"tracepipe_{name}_windows_emitted_total", len(final))
                    for consumer in on_final:
                        await consumer(final)
                await _record_marks(generation)
                dropped = stage.merger.take_counts()
                if dropped.late_partials:
                    counters.inc(
                        f"tracepipe_{name}_partials_dropped_total",
                        dropped.late_partials,
                        reason="late",
                    )
                if dropped.duplicate_partials:
                    counters.inc(
                        f"tracepipe_{name}_partials_dropped_total",
                        dropped.duplicate_partials,
                        reason="duplicate",
                    )

    async def _record_marks(generation: int | None) -> None:
        """Make each owned merge partition's emitted-through mark durable, then release the
        partials it covers (in offset order)."""
        sends = []
        through_by_partition = stage.merger.emitted_through()
        for merge_partition, through in through_by_partition.items():
            key = str(merge_partition).encode()
            value = str(through).encode()
            if marks_table.get(key) == value:
                continue
            sends.append(marks_table.write(merge_partition, key, value))
        if sends:
            await asyncio.gather(*sends)
        if not stage.unchanged(generation):
            return
        for merge_partition, through in through_by_partition.items():
            for message in stage.partial_hold.release(merge_partition, published_through(through)):
                message.ack(app.consumer)

    app.agent(signal.partials_topic, name=f"tracepipe.{name}-merge")(merge)

    async def window_sink(stream: faust.StreamT[bytes]) -> None:
        async for events in stream.take_events(  # type: ignore[attr-defined]
            SINK_BATCH, within=SINK_WAIT_S
        ):
            with held(app, events):
                rows = [signal.row(stage.output_codec.decode(e.message.value)) for e in events]
                await writer.write_rows(signal.table, list(signal.columns), rows)
                counters.inc(f"tracepipe_{name}_windows_stored_total", len(rows))

    app.agent(signal.output_topic, name=f"tracepipe.{name}-sink")(window_sink)
