"""The span sink's Faust agent: tracepipe.spans in batches -> otel_traces, bad records -> DLQ."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust

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
    send_dead_letter,
)


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
                    table = otel_traces_table(concat_columns(list(by_partition.values())))
                    for start in range(0, table.num_rows, config.batch_max_spans):
                        chunk = table.slice(start, config.batch_max_spans)
                        await writer.write_arrow(OTEL_TRACES, chunk)

    return app.agent(spans_topic, name="tracepipe.span-sink")(span_sink)
