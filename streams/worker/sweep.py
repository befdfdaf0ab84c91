"""The assembly sweep: a timer that finishes due traces, publishes their records on
tracepipe.traces (output only: nothing in the worker reads it back), stores their rows and hands
their service-graph calls and error origins to the edge and origin windows."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import faust

from streams.assemble.record import TraceRecord
from streams.assemble.record_codec import (
    TraceRecordEncoder,
    TraceRecordsCodec,
    encode_within,
    trace_batches,
)
from streams.assemble.stage import AssemblyStage, FinishedTrace
from streams.model.codec import SCHEMA_HEADER
from streams.model.column_codec import columns_from_spans
from streams.model.partition import hex_trace_partitions
from streams.sink.spans import OTEL_TRACES, otel_traces_table
from streams.sink.traces import (
    CRITICAL_PATH,
    CRITICAL_PATH_COLUMNS,
    ERROR_ORIGINS,
    ERROR_ORIGINS_COLUMNS,
    TRACES,
    TRACES_COLUMNS,
    critical_path_rows,
    error_origin_rows,
    trace_row,
)
from streams.sink.writer import WarehouseWriter
from streams.telemetry import Counters
from streams.worker.assemble import (
    SWEEP_SLICE_TRACES,
    TRACE_RECORD_MAX_BYTES,
    AssemblyState,
    PendingMarks,
    SweepBacklog,
)
from streams.worker.batch import register_timer

log = logging.getLogger("tracepipe.assemble")

SWEEP_ROWS_MAX_TRACES = 5000
"""Most published traces whose rows a sweep stores in one insert per table. Inserts of 4,000
web-shop traces' rows cost chDB 2.4 CPU µs/span, of 1,000 (one slice) 4.2 (bench/README.md,
session 11): a sweep stores the rows of several slices together."""


@dataclass
class PublishedSlice:
    """A sweep slice's traces, published on tracepipe.traces, whose rows are not stored yet
    (and so whose marks wait): by trace partition, with the generation they were finished in
    and, for the window stages, each partition's pending marks."""

    finished: list[FinishedTrace]
    by_partition: dict[int, list[FinishedTrace]]
    generation: int | None
    pending: dict[int, PendingMarks]


def traces_by_partition(
    finished: Sequence[FinishedTrace], partitions: int
) -> dict[int, list[FinishedTrace]]:
    """Finished traces by the partition of their trace ids (one murmur2 pass for them all),
    each partition's in the order given."""
    ids = [item.record["trace_id"] for item in finished]
    by_partition: dict[int, list[FinishedTrace]] = {}
    for partition, item in zip(hex_trace_partitions(ids, partitions), finished, strict=True):
        by_partition.setdefault(partition, []).append(item)
    return by_partition


def register_assembly(
    app: faust.App,
    stage: AssemblyStage,
    traces_topic: faust.TopicT,
    writer: WarehouseWriter,
    counters: Counters,
    state: AssemblyState,
    on_published: Callable[[int, list[TraceRecord], PendingMarks], None] | None = None,
    backlog: SweepBacklog | None = None,
) -> None:
    """Attach the sweep timer: finish due traces, publish their records, store their rows, and
    hand each partition's records to `on_published` (the edge and origin windows) with their
    pending marks; without it the marks are written at once. `backlog` says when the sweep is
    behind."""
    codec = TraceRecordsCodec()
    encoder = TraceRecordEncoder(codec.single)
    batch_header = [(SCHEMA_HEADER, codec.batch.fingerprint.encode())]
    counters.describe("tracepipe_traces_emitted_total", "Trace records published, by completion.")
    counters.describe("tracepipe_traces_stored_total", "Trace records stored in ClickHouse.")
    counters.describe(
        "tracepipe_traces_emitted_whole_total",
        "Trace records emitted as soon as the trace was whole, before assembly.trace_idle_ms.",
    )
    counters.describe(
        "tracepipe_trace_records_without_spans_total",
        "Trace records too large for Kafka with their spans (assembly.include_spans), "
        "published with span ids only.",
    )

    async def sweep() -> None:
        # A worker behind (a backlog, a restart) can find tens of thousands of traces due at
        # once: publish them a slice at a time and let the event loop serve the span agent,
        # the web server and the heartbeats in between.
        unstored: list[PublishedSlice] = []
        try:
            while True:
                published = await publish_slice()
                if published is not None:
                    unstored.append(published)
                last = published is None or len(published.finished) < SWEEP_SLICE_TRACES
                if unstored and (
                    last or sum(len(p.finished) for p in unstored) >= SWEEP_ROWS_MAX_TRACES
                ):
                    await store_rows(unstored)
                    unstored = []
                if last:
                    return
                if backlog is not None:
                    backlog.mark_behind()
                await asyncio.sleep(0)
        finally:
            if backlog is not None:
                backlog.mark_caught_up()

    async def publish_slice() -> PublishedSlice | None:
        if not state.ready():
            return None
        await state.write_due()
        finished = stage.finish_due(SWEEP_SLICE_TRACES)
        if not finished:
            return None
        # The emitted marks must not reach the changelog before the records reach the topic,
        # or a crash in between would lose the records: they are written once delivered.
        generation = state.generation
        by_partition = traces_by_partition(finished, state.partitions)
        # One message per traces partition (a trace record batch), not one per trace:
        # Faust costs producer and consumer ~100 µs per message whatever its size.
        bodies_by_partition: dict[int, list[bytes]] = {}
        completions: Counter[str] = Counter()
        whole = 0
        # The whole slice in one call: its long fields are encoded together (encode_many).
        published = encode_within(encoder, [i.record for i in finished], TRACE_RECORD_MAX_BYTES)
        encoded = {id(item): p for item, p in zip(finished, published, strict=True)}
        for partition, items in by_partition.items():
            bodies = bodies_by_partition[partition] = []
            for item in items:
                record, value = encoded[id(item)]
                if record is not item.record:
                    counters.inc("tracepipe_trace_records_without_spans_total")
                    log.warning(
                        "trace %s (%d spans) is over %d bytes with its spans: published "
                        "with span ids only (the spans are in otel_traces)",
                        record["trace_id"],
                        record["span_count"],
                        TRACE_RECORD_MAX_BYTES,
                    )
                bodies.append(value)
                completions[record["completion"]] += 1
                whole += item.whole
        for completion, count in completions.items():
            counters.inc("tracepipe_traces_emitted_total", count, completion=completion)
        if whole:
            counters.inc("tracepipe_traces_emitted_whole_total", whole)
        deliveries = [
            await traces_topic.send(value=batch, partition=partition, headers=batch_header)
            for partition, bodies in bodies_by_partition.items()
            for batch in trace_batches(bodies)
        ]
        await asyncio.gather(*deliveries)
        pending = (
            {}
            if on_published is None
            else {p: state.pending(p, items, generation) for p, items in by_partition.items()}
        )
        return PublishedSlice(finished, by_partition, generation, pending)

    async def store_rows(slices: list[PublishedSlice]) -> None:
        # Rows at emission, from the records in hand: the traces topic is output only.
        records = [item.record for s in slices for item in s.finished]
        await writer.write_rows(TRACES, TRACES_COLUMNS, [trace_row(r) for r in records])
        await writer.write_rows(
            CRITICAL_PATH,
            CRITICAL_PATH_COLUMNS,
            [row for r in records for row in critical_path_rows(r)],
        )
        await writer.write_rows(
            ERROR_ORIGINS,
            ERROR_ORIGINS_COLUMNS,
            [row for r in records if r["error_origins"] for row in error_origin_rows(r)],
        )
        counters.inc("tracepipe_traces_stored_total", len(records))
        if stage.sampling.enabled:
            kept = columns_from_spans(
                span for s in slices for item in s.finished for span in item.kept_spans
            )
            await writer.write_arrow(OTEL_TRACES, otel_traces_table(kept))
        # Only once the records, rows and sampled spans are out: a crash before the marks
        # re-emits the same versions from the re-read spans, never loses one.
        for s in slices:
            if on_published is None:
                await state.mark_emitted(s.by_partition, s.generation)
                continue
            for partition, items in s.by_partition.items():
                on_published(partition, [i.record for i in items], s.pending[partition])

    register_timer(app, stage.config.sweep_interval_ms / 1000, "tracepipe.assembly-sweep", sweep)

