"""The assembly stage's Faust state: spans messages held until the traces they fed are emitted,
the emitted marks on their changelog, and whether the sweep (streams.worker.sweep) is behind.

Spans reach the stage through the span agent (streams.worker.sink), which decodes each span once
for every consumer of tracepipe.spans.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import faust

from streams.assemble.buffer import NS_PER_MS
from streams.assemble.marks import EmittedMarks, mark_partition
from streams.assemble.stage import AssemblyStage, EmittedMark, FinishedTrace
from streams.hold import SourceHold
from streams.model.columns import SpanColumns
from streams.telemetry import Counters
from streams.worker.batch import MessagesByPartition
from streams.worker.state import StateTable

log = logging.getLogger("tracepipe.assemble")

SWEEP_SLICE_TRACES = 1000
"""Most traces a sweep finishes before it lets the event loop run (~0.15 s of work)."""
SWEEP_BEHIND_MAX_WAIT_S = 1.0
"""Longest the span agent waits for a sweep that is behind before it takes one batch anyway."""
TRACE_RECORD_MAX_BYTES = 900_000
"""Largest trace record published with its spans: under the producer's request size (Faust's
`producer_max_request_size`, 1,000,000 bytes, which also counts ~120 bytes of batch, record and
header overhead) and the broker's `message.max.bytes` (1 MiB + 12 B)."""


class SweepBacklog:
    """Whether the assembly sweep is behind: more traces due than one slice. The span agent
    waits for it to catch up before it takes more spans, so a worker short of CPU lags on the
    spans topic (visible, bounded by flow control) instead of holding whole and idle traces
    open for seconds while the span agent and the sweep take turns."""

    def __init__(self, counters: Counters, max_wait_s: float = SWEEP_BEHIND_MAX_WAIT_S) -> None:
        self._caught_up = asyncio.Event()
        self._caught_up.set()
        self._counters = counters
        self._max_wait_s = max_wait_s
        counters.describe(
            "tracepipe_span_intake_waits_total",
            "Span batches the span agent held back while the assembly sweep was behind.",
        )
        counters.describe(
            "tracepipe_span_intake_wait_ms_total",
            "Milliseconds the span agent waited for the assembly sweep to catch up.",
        )

    @property
    def behind(self) -> bool:
        """Whether the sweep has more traces due than it finished in its last slice."""
        return not self._caught_up.is_set()

    def mark_behind(self) -> None:
        """The sweep finished a full slice and goes on."""
        self._caught_up.clear()

    def mark_caught_up(self) -> None:
        """The sweep finished every trace that was due (or stopped)."""
        self._caught_up.set()

    async def wait(self) -> None:
        """Return once the sweep has caught up, or after `max_wait_s` at most (the span agent
        then takes one batch, so it is never stuck behind a sweep that does not end)."""
        if self._caught_up.is_set():
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._caught_up.wait(), self._max_wait_s)
        self._counters.inc("tracepipe_span_intake_waits_total")
        self._counters.inc(
            "tracepipe_span_intake_wait_ms_total", round((loop.time() - started) * 1000)
        )


@dataclass(eq=False, slots=True)
class HeldBatch:
    """One partition's messages of one span-agent batch: a SpanSource counting the open
    traces fed by them; released (acknowledged) once that count is back to zero."""

    partition: int
    traces: int = 0


def _fed_traces_emitted(batch: HeldBatch) -> bool:
    return batch.traces == 0


@dataclass(eq=False)
class PendingMarks:
    """One sweep's published traces of one partition whose service-graph calls and error
    origins wait in windows: each window stage fed by them (edges, origins) holds it as it holds
    a source message (`incref`, `ack`, `offset`), and the last `ack` makes their marks due. A
    mark written before those windows are published would lose their observations in a crash:
    the re-read spans would be duplicates, the traces not emitted again."""

    partition: int
    offset: int
    """The last spans offset read in the partition (the window stages' read-through)."""
    emitted: list[EmittedMark]
    """Their marks and sources only: a record held for the windows' seconds costs ~20 objects."""
    generation: int | None
    due: list[PendingMarks]
    holders: int = 0

    def incref(self) -> None:
        """One more window stage holds it."""
        self.holders += 1

    def ack(self, consumer: Any) -> None:
        """One holder's windows are published; once every holder's are, the next sweep writes
        the marks."""
        self.holders -= 1
        if self.holders <= 0:
            self.due.append(self)


class AssemblyState:
    """The stage's safety: spans messages held until the traces they fed are emitted, and the
    emitted marks (streams.assemble.marks) on a changelog-backed Faust table.

    After a (re)start or a rebalance the buffer starts over from the owned partitions' marks,
    and Faust re-reads every spans partition from its committed offset, which no unemitted
    trace's message is past (the messages are released in offset order). Mark records go to
    the partition of their trace ids (murmur2, as every tracepipe producer partitions
    tracepipe.spans), so a trace's marks sit beside its spans.
    """

    def __init__(
        self,
        app: faust.App,
        stage: AssemblyStage,
        partitions: int,
        spans_topic: str,
        marks_wait_ms: int = 0,
    ) -> None:
        self.app = app
        self.stage = stage
        self.partitions = partitions
        self.table = StateTable(
            app, "tracepipe-assembly-marks", partitions, spans_topic, mark_partition
        )
        config = stage.config
        self.marks = EmittedMarks(
            # Twice the longest a spans message can stay held: until its traces are emitted
            # (trace_max_age_ms) and their marks written (`marks_wait_ms`: the edge and origin
            # windows).
            span_ids_horizon_ns=2 * (config.trace_max_age_ms + marks_wait_ms) * NS_PER_MS,
            retention_ns=config.tombstone_retention_ms * NS_PER_MS,
            max_marks=config.max_tombstones,
        )
        self.hold: SourceHold[Any, HeldBatch] = SourceHold()
        self.last_offsets: dict[int, int] = {}
        self.due: list[PendingMarks] = []

    @property
    def generation(self) -> int | None:
        """The consumer group generation the buffer was rebuilt for."""
        return self.table.generation

    def ready(self) -> bool:
        """True once the marks table is recovered and the buffer rebuilt from it for the
        partitions this worker owns since the latest rebalance (False while one is under way)."""
        entries = self.table.rebalanced()
        if entries is not None:
            self._rebuild(entries)
        return self.table.current()

    def _rebuild(self, entries: list[tuple[bytes, bytes]]) -> None:
        # Faust seeks every assigned partition back to its committed offset after a rebalance:
        # the held messages come again, and the buffer starts from what the owned partitions'
        # marks say was emitted.
        dropped = self.hold.drop()
        self.last_offsets.clear()
        self.due.clear()
        marks = self.marks.restore(entries)
        self.stage.restore(marks)
        log.info(
            "assembly for partitions %s starts over: %d emitted traces remembered, %d held "
            "spans messages re-read",
            sorted(self.table.owned_partitions()),
            len(marks),
            dropped,
        )

    def add(self, batch: dict[int, SpanColumns], messages: MessagesByPartition) -> None:
        """Buffer span batches (restoring first if this is the first work after a start or a
        rebalance), holding their messages until the traces they feed are emitted; nothing
        while a rebalance is under way."""
        if not self.ready():
            # A rebalance began since the span agent checked the batch: it drops the batch,
            # which comes again after the seek. (Spans before the first recovery would be a
            # bug: Faust delivers nothing until then.)
            count = sum(len(columns) for columns in batch.values())
            log.warning("assembly state not ready: %d spans left for their redelivery", count)
            return
        for partition, partition_messages in messages.items():
            source = HeldBatch(partition)
            for message in partition_messages:
                message.incref()
            self.hold.hold(partition, partition_messages, source)
            if partition_messages:
                self.last_offsets[partition] = partition_messages[-1].offset
            columns = batch.get(partition)
            if columns is not None:
                self.stage.add_columns(columns, source)
            # A batch that fed no trace (rejected or duplicate spans only) goes in its turn.
            self._release(partition)

    def _release(self, partition: int) -> None:
        for message in self.hold.release(partition, _fed_traces_emitted):
            message.ack(self.app.consumer)

    def pending(
        self, partition: int, finished: list[FinishedTrace], generation: int | None
    ) -> PendingMarks:
        """The marks of a sweep's published traces of one partition, for the edge stage to
        hold until their calls' windows are published."""
        offset = self.last_offsets.get(partition, -1)
        emitted = [EmittedMark(item.mark, item.sources) for item in finished]
        return PendingMarks(partition, offset, emitted, generation, self.due)

    async def write_due(self) -> None:
        """Write the marks the edge stage has released (see PendingMarks)."""
        # Cleared in place: every PendingMarks appends to this one list.
        due = list(self.due)
        self.due.clear()
        by_generation: dict[int | None, dict[int, list[EmittedMark]]] = {}
        for pending in due:
            by_partition = by_generation.setdefault(pending.generation, {})
            by_partition.setdefault(pending.partition, []).extend(pending.emitted)
        for generation, by_partition in by_generation.items():
            await self.mark_emitted(by_partition, generation)

    async def mark_emitted(
        self,
        by_partition: Mapping[int, Sequence[FinishedTrace | EmittedMark]],
        generation: int | None,
    ) -> None:
        """Make published traces' marks durable (and expire old ones), then release the spans
        messages nothing holds any more; nothing if a rebalance rebuilt the buffer meanwhile
        (the new owner re-reads those messages and emits the same versions again). The traces
        come by trace partition (`traces_by_partition`)."""
        if generation is None or generation != self.table.generation:
            return
        at_ns = max((i.mark[2] for items in by_partition.values() for i in items), default=0)
        sends: list[asyncio.Future[Any]] = []
        for partition, items in by_partition.items():
            marks = [item.mark for item in items]
            for key, value in self.marks.records(partition, marks, at_ns):
                sends.append(self.table.write(partition, key, value))
        for key in self.marks.expired(at_ns):
            sends.append(self.table.write(mark_partition(key), key, None))
        # The marks must be on the broker before any offset they cover is committed: Faust
        # flushes its producer before a commit only while each record takes under 0.1 s.
        await asyncio.gather(*sends)
        if generation != self.table.generation or not self.table.current():
            return
        partitions: set[int] = set()
        for items in by_partition.values():
            for item in items:
                for source in item.sources:
                    source.traces -= 1
                    partitions.add(source.partition)
        for partition in partitions:
            self._release(partition)
