"""The aggregation stage's Faust wiring, the same for every signal (latency, edges, origins); the
stage itself (aggregator, merger, holds) is streams.aggregate.stage.AggregationStage.

source (span agent: latency; the assembly sweep: edges, origins) ─ observe() ─> WindowAggregator
emit timer: closed partials (keyed by window key) + watermarks (to every partition)
    ──> <signal>-partials ──> merge agent: WindowMerger ──> final windows ──> <signal>
window sink agent: <signal> ──> ClickHouse (tracepipe_latency / _edges / _error_origin_windows)

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
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
from faust.types import TP

from streams.aggregate.merge import FinalWindow, final_record, partial_record, watermark_record
from streams.aggregate.stage import AggregationStage
from streams.aggregate.window import WindowKey
from streams.hold import published_through
from streams.model.codec import SCHEMA_HEADER
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
    partials_topic: faust.TopicT,
    output_topic: faust.TopicT,
    writer: WarehouseWriter,
    counters: Counters,
    on_final: Sequence[FinalWindowsConsumer] = (),
) -> None:
    """Attach the emit timer (partials to `partials_topic`), the merge agent (final windows to
    `output_topic`, then to `on_final`, e.g. the alert stage) and the window sink agent of one
    signal."""
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
        partials_topic.get_topic_name(),
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
                await partials_topic.send(
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
                    await partials_topic.send(
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
                        await output_topic.send(
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

    app.agent(partials_topic, name=f"tracepipe.{name}-merge")(merge)

    async def window_sink(stream: faust.StreamT[bytes]) -> None:
        async for events in stream.take_events(  # type: ignore[attr-defined]
            SINK_BATCH, within=SINK_WAIT_S
        ):
            with held(app, events):
                rows = [signal.row(stage.output_codec.decode(e.message.value)) for e in events]
                await writer.write_rows(signal.table, list(signal.columns), rows)
                counters.inc(f"tracepipe_{name}_windows_stored_total", len(rows))

    app.agent(output_topic, name=f"tracepipe.{name}-sink")(window_sink)
