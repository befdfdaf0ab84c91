"""The span sink's Faust agent: tracepipe.spans in batches -> otel_traces, bad records -> DLQ."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust

from streams.batch_agent import (
    MessagesByPartition,
    current_events,
    gone_stale,
    header_value,
    held,
    messages_by_partition,
    rejected_event,
    send_dead_letter,
)
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


class SpanDecoder:
    """Raw tracepipe.spans messages -> valid spans: single spans and span batches (an Avro array
    of spans, named by its own schema fingerprint), each span validated on its own."""

    def __init__(self, limits: IngestConfig) -> None:
        self.limits = limits
        self.span_codec = AvroCodec("span")
        self.batch_codec = AvroCodec("span", array=True)

    def split(self, events: Sequence[Any]) -> tuple[SpansByPartition, list[DeadLetter], int]:
        """Decode and validate a batch of raw events: the spans by partition, dead letters for
        the rest (a bad span in a span batch alone, re-encoded as a single span), and how many
        spans were read."""
        spans: SpansByPartition = {}
        rejected: list[DeadLetter] = []
        read = 0
        for event in events:
            message = event.message
            value = message.value or b""
            fingerprint = header_value(message.headers, SCHEMA_HEADER)
            try:
                check_record_size(value, self.limits)
                decoded, is_batch = self.decode(value, fingerprint)
            except DecodeError as err:
                read += 1
                rejected.append(rejected_event(event, STAGE, err, value))
                continue
            read += len(decoded)
            held = spans.get(message.partition)
            if held is None:
                held = spans[message.partition] = []
            for span in decoded:
                try:
                    held.append(validate_span(span, self.limits))
                except DecodeError as err:
                    # Replaying a dead letter must not replay its batch's good spans too, and a
                    # dead letter carries no schema header: it is always a single span's body.
                    alone = self.span_codec.encode(span) if is_batch else value
                    rejected.append(rejected_event(event, STAGE, err, alone))
        return spans, rejected, read

    def decode(self, value: bytes, fingerprint: str | None) -> tuple[list[Span], bool]:
        """The spans of one message and whether it was a span batch; DecodeError when it
        cannot be read."""
        if self.batch_codec.knows(fingerprint):
            return self.batch_codec.decode(value, fingerprint), True
        return [self.span_codec.decode(value, fingerprint)], False


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
    before_ack: Sequence[Callable[[], Awaitable[None]]] = (),
) -> faust.types.AgentT[Any]:
    """Attach the span agent to `app`: every valid span goes to each of `on_spans` (trace
    assembly, latency windows; with the batch's messages, for a stage that holds them) and,
    unless tail sampling stores spans at trace emission instead, to otel_traces. A batch is
    acknowledged once stored and each of `before_ack` (e.g. the assembly changelog delivered)
    has returned."""
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
                if store_spans:
                    rows = [span_row(s) for spans in by_partition.values() for s in spans]
                    for start in range(0, len(rows), config.batch_max_spans):
                        chunk = rows[start : start + config.batch_max_spans]
                        await writer.write_rows(OTEL_TRACES, OTEL_TRACES_COLUMNS, chunk)
                for settle in before_ack:
                    await settle()

    return app.agent(spans_topic, name="tracepipe.span-sink")(span_sink)
