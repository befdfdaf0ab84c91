"""The span sink's Faust agent: tracepipe.spans in batches -> otel_traces, bad records -> DLQ."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import faust

from streams.config import IngestConfig, SpanSinkConfig
from streams.deadletter import DeadLetter
from streams.errors import DecodeError
from streams.ingest.validate import check_record_size, validate_columns, validate_span
from streams.model.codec import SCHEMA_HEADER, AvroCodec
from streams.model.column_codec import SpanColumnsCodec, columns_from_spans
from streams.model.columns import SpanColumns, concat_columns
from streams.model.span import Span
from streams.sink.spans import OTEL_TRACES, otel_traces_table
from streams.sink.writer import WarehouseWriter
from streams.telemetry import Counters
from streams.worker.batch import (
    MessagesByPartition,
    current_events,
    gone_stale,
    header_value,
    held,
    messages_by_partition,
    rejected_event,
    send_dead_letter,
)

STAGE = "span-sink"


SpansByPartition = dict[int, SpanColumns]
"""A batch's valid spans as columns, by the tracepipe.spans partition they were read from."""


class SpanDecoder:
    """Raw tracepipe.spans messages -> valid span columns. Reads span column batches, span
    batches (an Avro array of spans) and single spans, each named by its schema fingerprint;
    every span is validated on its own, and a rejected one is dead-lettered alone."""

    def __init__(self, limits: IngestConfig) -> None:
        self.limits = limits
        self.span_codec = AvroCodec("span")
        self.batch_codec = AvroCodec("span", array=True)
        self.columns_codec = SpanColumnsCodec()

    def split(self, events: Sequence[Any]) -> tuple[SpansByPartition, list[DeadLetter], int]:
        """Decode and validate a batch of raw events: the spans by partition, dead letters for
        the rest (a bad span of a batch alone, re-encoded as a single span), and how many
        spans were read."""
        parts: dict[int, list[SpanColumns]] = {}
        rejected: list[DeadLetter] = []
        read = 0
        for event in events:
            message = event.message
            value = message.value or b""
            fingerprint = header_value(message.headers, SCHEMA_HEADER)
            try:
                check_record_size(value, self.limits)
                columns, bad, count = self.decode(value, fingerprint)
            except DecodeError as err:
                read += 1
                rejected.append(rejected_event(event, STAGE, err, value))
                continue
            read += count
            single = not (
                self.columns_codec.knows(fingerprint) or self.batch_codec.knows(fingerprint)
            )
            for span, why in bad:
                # Replaying a dead letter must not replay its batch's good spans too, and a
                # dead letter carries no schema header: it is always a single span's body.
                alone = value if single else self.span_codec.encode(span)
                rejected.append(rejected_event(event, STAGE, why, alone))
            if len(columns):
                parts.setdefault(message.partition, []).append(columns)
        spans = {partition: concat_columns(batches) for partition, batches in parts.items()}
        return spans, rejected, read

    def decode(
        self, value: bytes, fingerprint: str | None
    ) -> tuple[SpanColumns, list[tuple[Span, DecodeError]], int]:
        """One message's valid spans, its rejected spans with their errors, and how many spans
        it held; DecodeError when the message cannot be read."""
        if self.columns_codec.knows(fingerprint):
            columns = self.columns_codec.decode(value, fingerprint)
            try:
                valid, bad = validate_columns(columns, self.limits)
            except (ValueError, TypeError, IndexError, OverflowError) as err:
                # Columns that decode but contradict themselves in a way the decoder's checks
                # missed: the message goes to the DLQ with the reason; the agent keeps running.
                raise DecodeError("invalid-columns", f"{type(err).__name__}: {err}") from err
            return valid, bad, len(columns)
        if self.batch_codec.knows(fingerprint):
            spans = self.batch_codec.decode(value, fingerprint)
        else:
            spans = [self.span_codec.decode(value, fingerprint)]
        good: list[Span] = []
        bad = []
        for span in spans:
            try:
                good.append(validate_span(span, self.limits))
            except DecodeError as err:
                bad.append((span, err))
        return columns_from_spans(good), bad, len(spans)


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
) -> faust.types.AgentT[Any]:
    """Attach the span agent to `app`: every valid span goes to each of `on_spans` (trace
    assembly, latency windows; with the batch's messages, for a stage that holds them) and,
    unless tail sampling stores spans at trace emission instead, to otel_traces. A batch is
    acknowledged once stored and released by every stage that holds its messages."""
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
                if store_spans and by_partition:
                    table = otel_traces_table(concat_columns(list(by_partition.values())))
                    for start in range(0, table.num_rows, config.batch_max_spans):
                        chunk = table.slice(start, config.batch_max_spans)
                        await writer.write_arrow(OTEL_TRACES, chunk)

    return app.agent(spans_topic, name="tracepipe.span-sink")(span_sink)
