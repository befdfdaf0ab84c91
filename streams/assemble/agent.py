"""The assembly stage's Faust wiring: a timer that finishes due traces and publishes them, and
the trace sink agent that stores published traces in ClickHouse.

Spans reach the stage through the span agent (streams.sink.agent), which decodes each span once
for every consumer of tracepipe.spans.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import faust

from streams.assemble.chunks import SpanChunks
from streams.assemble.record import (
    TraceRecord,
    TraceRecordEncoder,
    TraceRecordsCodec,
    encode_within,
    trace_batches,
)
from streams.assemble.stage import AssemblyStage
from streams.batch_agent import (
    MessagesByPartition,
    current_events,
    current_generation,
    gone_stale,
    header_value,
    held,
    messages_by_partition,
    register_timer,
)
from streams.model.codec import SCHEMA_HEADER
from streams.model.column_codec import columns_from_spans
from streams.model.columns import SpanColumns
from streams.model.partition import trace_partition
from streams.sink.spans import OTEL_TRACES, otel_traces_table
from streams.sink.traces import (
    CRITICAL_PATH,
    CRITICAL_PATH_COLUMNS,
    TRACES,
    TRACES_COLUMNS,
    critical_path_rows,
    trace_row,
)
from streams.sink.writer import WarehouseWriter
from streams.telemetry import Counters

log = logging.getLogger("tracepipe.assemble")

TRACE_SINK_BATCH = 1000
SWEEP_SLICE_TRACES = 1000
"""Most traces a sweep finishes before it lets the event loop run (~0.15 s of work)."""
TRACE_SINK_WAIT_S = 0.5
TRACE_RECORD_MAX_BYTES = 1_000_000
"""Largest trace record published with its spans: under the producer's request size (Faust's
`producer_max_request_size`, 1 MiB) and the broker's `message.max.bytes` (1 MiB + 12 B)."""


@dataclass(frozen=True)
class Captured:
    """State changes taken from the buffer at write count `at`, not yet written."""

    at: int
    changes: list[tuple[str, str, Any]]
    generation: int | None = None


class AssemblyState:
    """The stage's buffer made durable: changes go to a changelog-backed Faust table, and the
    buffer is rebuilt from the table once Faust has recovered it after a (re)start.

    A trace's spans added by one write share one table key (streams.assemble.chunks), so the
    changelog carries a record per trace and write, not per span. Changelog records go to the
    partition of the trace id (murmur2, as every tracepipe producer partitions
    tracepipe.spans), so a trace's state sits beside its spans.
    """

    def __init__(
        self, app: faust.App, stage: AssemblyStage, partitions: int, spans_topic: str = ""
    ) -> None:
        self.app = app
        self.stage = stage
        self.partitions = partitions
        self.spans_topic = spans_topic
        self._generation: int | None = None
        # Keys and values are bytes we encode ourselves (state key, pickled value): the
        # changelog is private to this stage and pickle keeps attribute types as they are.
        self.table = app.Table(
            "tracepipe-assembly", partitions=partitions, key_type=bytes, value_type=bytes
        )
        self.restored = False
        self.chunks = SpanChunks()
        self._writes = 0
        # Keys written while a capture is outstanding (at most one sweep's worth): a captured
        # change must not overwrite a newer write of its key.
        self._outstanding = 0
        self._written: dict[str, int] = {}
        # Changelog records sent but maybe not on the broker yet (see `durable`).
        self._sending: list[asyncio.Future[Any]] = []

    def ready(self) -> bool:
        """True once the table is recovered and the buffer rebuilt from it for the partitions
        this worker owns since the latest rebalance (False while one is under way)."""
        recovery = self.app.tables.recovery  # type: ignore[attr-defined]
        generation = current_generation(self.app)
        if generation is None or not recovery.completed.is_set():
            return False
        if generation != self._generation:
            self._rebuild(generation)
        return self.restored

    def _rebuild(self, generation: int) -> None:
        # Partitions can move between workers at every rebalance: the buffer holds exactly the
        # owned partitions' traces, as their changelog has them (Faust recovered the new ones).
        # Faust's memory store only forgets keys it recovered itself, not the ones this class
        # wrote, so keys of partitions owned elsewhere now are dropped here.
        owned = {
            tp.partition
            for tp in self.app.assignor.assigned_actives()
            if not self.spans_topic or tp.topic == self.spans_topic
        }
        entries = []
        for raw_key in list(self.table.data):
            key = raw_key.decode()
            if trace_partition(key.partition("/")[0], self.partitions) in owned:
                entries.append((key, pickle.loads(self.table.data[raw_key])))
            else:
                del self.table.data[raw_key]
        self.chunks = SpanChunks()
        self.stage.restore(self.chunks.unpack(entries))
        self._written.clear()
        self._generation = generation
        self.restored = True
        log.info(
            "assembly state for partitions %s: %d open traces",
            sorted(owned),
            self.stage.buffer.open_trace_count,
        )

    def add(self, batches: Iterable[SpanColumns]) -> None:
        """Buffer span batches (restoring first if this is the first work after a start or a
        rebalance) and persist; nothing while a rebalance is under way."""
        if not self.ready():
            # A rebalance began since the span agent checked the batch: it drops the batch,
            # which comes again after the seek. (Spans before the first recovery would be a
            # bug: Faust delivers nothing until then.)
            count = sum(len(columns) for columns in batches)
            log.warning("assembly state not ready: %d spans left for their redelivery", count)
            return
        for columns in batches:
            self.stage.add_columns(columns)
        self.persist()

    def persist(self) -> None:
        """Write the buffer's changes since the last call to the table and its changelog;
        `durable` waits for them."""
        self._sending.extend(self.write(self.capture()))

    def capture(self) -> Captured:
        """Take the buffer's changes now, to write later (after the records they mark emitted
        are on the traces topic); writes made in between win over them. Every capture must be
        written."""
        self._outstanding += 1
        return Captured(self._writes, self.stage.take_changes(), self._generation)

    def write(self, captured: Captured) -> list[asyncio.Future[Any]]:
        """Write captured changes, skipping keys written since they were captured; return the
        changelog sends (each done once the broker has its record)."""
        self._outstanding -= 1
        if captured.generation != self._generation:
            # Captured before a rebalance rebuilt the buffer from the table: the rebuilt
            # buffer emits those traces again (same content, the same version), never loses.
            return []
        fresh = [c for c in captured.changes if self._written.get(c[1], -1) <= captured.at]
        self._writes += 1
        if self._outstanding:
            for _, key, _ in fresh:
                self._written[key] = self._writes
        else:
            self._written.clear()
        sends: list[asyncio.Future[Any]] = []
        for trace_id, key, value in self.chunks.pack(fresh, self._current):
            raw_key = key.encode()
            raw_value = None if value is None else pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
            if raw_value is None:
                self.table.data.pop(raw_key, None)
            else:
                self.table.data[raw_key] = raw_value
            partition = trace_partition(trace_id, self.partitions)
            sends.append(
                self.table.send_changelog(
                    partition, raw_key, raw_value, key_serializer="raw", value_serializer="raw"
                )
            )
        return sends

    async def durable(self) -> None:
        """Wait until every changelog record `persist` wrote so far is on the broker.

        The span agent awaits this before its batch's offsets may be committed: Faust flushes
        its producer buffer before a commit only for as long as each record takes under 0.1 s
        (ProducerBuffer.flush_atmost), so without it a commit could overtake the state of the
        spans it covers, and a crash then would lose that state for good.
        """
        sending, self._sending = self._sending, []
        if sending:
            await asyncio.gather(*sending)

    def drop(self, captured: Captured) -> None:
        """Give up a capture that will not be written (its records were not delivered): the
        table keeps the traces unemitted, so a restart emits them again."""
        self._outstanding -= 1

    def _current(self, key: str) -> Any:
        raw = self.table.data.get(key.encode())
        return None if raw is None else pickle.loads(raw)


def register_assembly(
    app: faust.App,
    stage: AssemblyStage,
    traces_topic: faust.TopicT,
    writer: WarehouseWriter,
    counters: Counters,
    state: AssemblyState,
    on_traces: Sequence[Callable[[dict[int, list[TraceRecord]], MessagesByPartition], None]] = (),
) -> None:
    """Attach the sweep timer (finish due traces, publish them) and the trace sink agent, which
    also hands each batch of trace records, by tracepipe.traces partition, to `on_traces`."""
    codec = TraceRecordsCodec()
    encoder = TraceRecordEncoder(codec.single)
    batch_header = [(SCHEMA_HEADER, codec.batch.fingerprint.encode())]
    counters.describe("tracepipe_traces_emitted_total", "Trace records published, by completion.")
    counters.describe("tracepipe_traces_stored_total", "Trace records stored in ClickHouse.")
    counters.describe(
        "tracepipe_trace_records_without_spans_total",
        "Trace records too large for Kafka with their spans (assembly.include_spans), "
        "published with span ids only.",
    )

    async def sweep() -> None:
        # A worker behind (a backlog, a restart) can find tens of thousands of traces due at
        # once: publish them a slice at a time and let the event loop serve the span agent,
        # the web server and the heartbeats in between.
        while await sweep_slice() == SWEEP_SLICE_TRACES:
            await asyncio.sleep(0)

    async def sweep_slice() -> int:
        if not state.ready():
            return 0
        finished = stage.finish_due(SWEEP_SLICE_TRACES)
        if not finished:
            return 0
        # The emitted marks must not reach the changelog before the records reach the topic,
        # or a crash in between would lose the records: hold them back until delivered.
        emitted_marks = state.capture()
        try:
            # One message per traces partition (a trace record batch), not one per trace:
            # Faust costs producer and consumer ~100 µs per message whatever its size.
            by_partition: dict[int, list[bytes]] = {}
            for item in finished:
                record, value = encode_within(encoder, item.record, TRACE_RECORD_MAX_BYTES)
                if record is not item.record:
                    counters.inc("tracepipe_trace_records_without_spans_total")
                    log.warning(
                        "trace %s (%d spans) is over %d bytes with its spans: published "
                        "with span ids only (the spans are in otel_traces)",
                        record["trace_id"],
                        record["span_count"],
                        TRACE_RECORD_MAX_BYTES,
                    )
                partition = trace_partition(record["trace_id"], state.partitions)
                by_partition.setdefault(partition, []).append(value)
                counters.inc("tracepipe_traces_emitted_total", completion=record["completion"])
            deliveries = [
                await traces_topic.send(value=batch, partition=partition, headers=batch_header)
                for partition, bodies in by_partition.items()
                for batch in trace_batches(bodies)
            ]
            await asyncio.gather(*deliveries)
        except BaseException:
            state.drop(emitted_marks)
            raise
        # Only once the records are on the topic: a crash before this re-emits, never loses.
        state.write(emitted_marks)
        if stage.sampling.enabled:
            kept = columns_from_spans(s for item in finished for s in item.kept_spans)
            await writer.write_arrow(OTEL_TRACES, otel_traces_table(kept))
        return len(finished)

    register_timer(app, stage.config.sweep_interval_ms / 1000, "tracepipe.assembly-sweep", sweep)

    async def trace_sink(stream: faust.StreamT[bytes]) -> None:
        # take_events exists on faust-streaming's Stream but not on its StreamT protocol.
        async for events in stream.take_events(  # type: ignore[attr-defined]
            TRACE_SINK_BATCH, within=TRACE_SINK_WAIT_S
        ):
            events = current_events(app, events)
            with held(app, events):
                records: list[Any] = []
                by_partition: dict[int, list[TraceRecord]] = {}
                for event in events:
                    message = event.message
                    fingerprint = header_value(message.headers, SCHEMA_HEADER)
                    read = codec.decode(message.value, fingerprint)
                    records.extend(read)
                    by_partition.setdefault(message.partition, []).extend(read)
                messages = messages_by_partition(events)
                for consumer in on_traces:
                    consumer(by_partition, messages)
                if gone_stale(app, events):
                    continue
                await writer.write_rows(
                    TRACES,
                    TRACES_COLUMNS,
                    [trace_row(r) for r in records],
                )
                await writer.write_rows(
                    CRITICAL_PATH,
                    CRITICAL_PATH_COLUMNS,
                    [row for r in records for row in critical_path_rows(r)],
                )
                counters.inc("tracepipe_traces_stored_total", len(records))

    app.agent(traces_topic, name="tracepipe.trace-sink")(trace_sink)
