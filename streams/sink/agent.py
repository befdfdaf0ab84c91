"""The span sink's Faust agent: tracepipe.spans in batches -> otel_traces, bad records -> DLQ."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import faust

from streams.batch_agent import abandon, header_value, rejected_event, send_dead_letter
from streams.config import IngestConfig, SpanSinkConfig
from streams.deadletter import DeadLetter
from streams.errors import DecodeError
from streams.ingest.validate import check_record_size, validate_span
from streams.model.codec import SCHEMA_HEADER, AvroCodec
from streams.model.span import Span
from streams.sink.spans import OTEL_TRACES, OTEL_TRACES_COLUMNS, span_row
from streams.sink.writer import WarehouseWriter
from streams.telemetry import Counters

STAGE = "span-sink"


SpansByPartition = dict[int, list[Span]]
"""A batch's valid spans grouped by the tracepipe.spans partition they were read from."""


def split_batch(
    codec: AvroCodec, events: Sequence[Any], limits: IngestConfig
) -> tuple[SpansByPartition, list[DeadLetter]]:
    """Decode and validate a batch of raw events: the spans by partition, and dead letters for
    the rest."""
    spans: SpansByPartition = {}
    rejected: list[DeadLetter] = []
    for event in events:
        message = event.message
        value = message.value or b""
        try:
            check_record_size(value, limits)
            span = codec.decode(value, header_value(message.headers, SCHEMA_HEADER))
            span = validate_span(span, limits)
        except DecodeError as err:
            rejected.append(rejected_event(event, STAGE, err, value))
            continue
        held = spans.get(message.partition)
        if held is None:
            spans[message.partition] = [span]
        else:
            held.append(span)
    return spans, rejected


def register_span_sink(
    app: faust.App,
    spans_topic: faust.TopicT,
    dlq_topic: faust.TopicT,
    writer: WarehouseWriter,
    config: SpanSinkConfig,
    limits: IngestConfig,
    counters: Counters,
    on_spans: Sequence[Callable[[SpansByPartition], None]] = (),
    store_spans: bool = True,
) -> faust.types.AgentT[Any]:
    """Attach the span agent to `app`: every valid span goes to each of `on_spans` (trace
    assembly, latency windows) and, unless tail sampling stores spans at trace emission
    instead, to otel_traces."""
    codec = AvroCodec("span")
    counters.describe("tracepipe_dlq_records_total", "Records sent to the dead-letter topic.")
    counters.describe("tracepipe_spans_consumed_total", "Records read from tracepipe.spans.")

    async def span_sink(stream: faust.StreamT[bytes]) -> None:
        # take_events exists on faust-streaming's Stream but not on its StreamT protocol.
        async for events in stream.take_events(  # type: ignore[attr-defined]
            config.batch_max_spans, within=config.batch_max_wait_ms / 1000
        ):
            try:
                by_partition, rejected = split_batch(codec, events, limits)
                counters.inc("tracepipe_spans_consumed_total", len(events), stage=STAGE)
                for letter in rejected:
                    await send_dead_letter(dlq_topic, letter, counters)
                for consumer in on_spans:
                    consumer(by_partition)
                if store_spans:
                    rows = [span_row(s) for spans in by_partition.values() for s in spans]
                    await writer.write_rows(OTEL_TRACES, OTEL_TRACES_COLUMNS, rows)
            except asyncio.CancelledError:
                abandon(app, events)
                raise

    return app.agent(spans_topic, name="tracepipe.span-sink")(span_sink)
