"""The span sink's Faust agent: tracepipe.spans in batches -> otel_traces, bad records -> DLQ."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
import pyarrow as pa  # type: ignore[import-untyped]

from streams.config import IngestConfig, SpanSinkConfig
from streams.model.columns import concat_columns
from streams.sink.decoder import STAGE, SpanDecoder, SpansByPartition
from streams.sink.spans import OTEL_TRACES, otel_traces_table
from streams.sink.writer import WarehouseWriter
from streams.telemetry import Counters
from streams.worker.batch import (
    MessagesByPartition,
    current_events,
    gone_stale,
    held,
    messages_by_partition,
    register_timer,
    send_dead_letter,
)


class PendingSpanRows:
    """otel_traces rows of several span-agent batches, stored in one insert once `max_spans`
    are waiting or the oldest has waited `max_wait_s`; each batch's messages stay
    unacknowledged until its rows are stored.

    One insert per agent batch (~13,500 spans at 27,000 spans/s) made chDB spend most of an
    insert's cost on the part it creates and on merging parts later (bench/README.md, session
    11). A batch that went stale meanwhile (a rebalance) is left out and never acknowledged:
    its re-read copy is stored instead."""

    def __init__(
        self, app: Any, writer: WarehouseWriter, max_spans: int, max_wait_s: float
    ) -> None:
        self._app = app
        self._writer = writer
        self._max_spans = max_spans
        self._max_wait_s = max_wait_s
        self._batches: list[tuple[pa.Table, Sequence[Any]]] = []
        self._spans = 0
        self._oldest_s: float | None = None
        # One insert at a time, in arrival order: a partition's acks never overtake each other.
        self._storing = asyncio.Lock()

    @property
    def spans(self) -> int:
        """Rows waiting for their insert."""
        return self._spans

    async def add(self, rows: pa.Table, events: Sequence[Any]) -> None:
        """Take one agent batch's rows, holding its messages until they are stored; store
        everything waiting once `max_spans` are (the agent waits for that insert: intake
        slows down with the warehouse, as before)."""
        for event in events:
            event.message.incref()
        self._batches.append((rows, events))
        self._spans += rows.num_rows
        if self._oldest_s is None:
            self._oldest_s = time.monotonic()
        if self._spans >= self._max_spans:
            await self.store()

    async def store_due(self) -> None:
        """Store the waiting rows if the oldest has waited `max_wait_s` (a timer calls this)."""
        if self._oldest_s is not None and time.monotonic() - self._oldest_s >= self._max_wait_s:
            await self.store()

    async def store(self) -> None:
        """Store every waiting row (retried until stored), then acknowledge their messages."""
        async with self._storing:
            batches, self._batches = self._batches, []
            self._spans, self._oldest_s = 0, None
            current = [
                (rows, events) for rows, events in batches if not gone_stale(self._app, events)
            ]
            if not current:
                return
            table = pa.concat_tables([rows for rows, _ in current])
            for start in range(0, table.num_rows, self._max_spans):
                await self._writer.write_arrow(OTEL_TRACES, table.slice(start, self._max_spans))
            for _, events in current:
                for event in events:
                    event.message.ack(self._app.consumer)


def register_span_sink(
    app: faust.App,
    spans_topic: faust.TopicT,
    dlq_topic: faust.TopicT,
    writer: WarehouseWriter,
    config: SpanSinkConfig,
    limits: IngestConfig,
    counters: Counters,
    on_spans: Sequence[Callable[[SpansByPartition, MessagesByPartition], None]] = (),
    store_spans: bool = True,
    admit: Callable[[], Awaitable[None]] | None = None,
) -> faust.types.AgentT[Any]:
    """Attach the span agent to `app`: every valid span goes to each of `on_spans` (trace
    assembly, latency windows; with the batch's messages, for a stage that holds them) and,
    unless tail sampling stores spans at trace emission instead, to otel_traces. A batch is
    acknowledged once stored and released by every stage that holds its messages. `admit` is
    awaited before each batch is taken in (the assembly sweep's backlog)."""
    decoder = SpanDecoder(limits)
    pending = PendingSpanRows(app, writer, config.batch_max_spans, config.flush_interval_ms / 1000)
    register_timer(
        app, min(0.25, config.flush_interval_ms / 2000), "tracepipe.span-rows", pending.store_due
    )
    counters.describe("tracepipe_dlq_records_total", "Records sent to the dead-letter topic.")
    counters.describe("tracepipe_spans_consumed_total", "Spans read from tracepipe.spans.")
    counters.describe(
        "tracepipe_span_messages_consumed_total",
        "Kafka messages read from tracepipe.spans (one span or a span batch each).",
    )

    async def span_sink(stream: faust.StreamT[bytes]) -> None:
        # take_events exists on faust-streaming's Stream but not on its StreamT protocol.
        async for events in stream.take_events(  # type: ignore[attr-defined]
            config.batch_max_messages, within=config.batch_max_wait_ms / 1000
        ):
            if admit is not None:
                await admit()
            events = current_events(app, events)
            with held(app, events):
                by_partition, rejected, read = decoder.split(events)
                counters.inc("tracepipe_spans_consumed_total", read, stage=STAGE)
                counters.inc("tracepipe_span_messages_consumed_total", len(events), stage=STAGE)
                messages = messages_by_partition(events)
                for consumer in on_spans:
                    consumer(by_partition, messages)
                if gone_stale(app, events):
                    continue
                for letter in rejected:
                    await send_dead_letter(dlq_topic, letter, counters)
                if store_spans and by_partition:
                    rows = otel_traces_table(concat_columns(list(by_partition.values())))
                    await pending.add(rows, events)

    return app.agent(spans_topic, name="tracepipe.span-sink")(span_sink)
