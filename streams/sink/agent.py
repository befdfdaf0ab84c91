"""The span sink's Faust agent: tracepipe.spans in batches -> decode -> otel_traces, bad -> DLQ."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import faust

from streams.config import SpanSinkConfig
from streams.deadletter import REASON_HEADER, STAGE_HEADER, DeadLetter, dead_letter
from streams.errors import DecodeError
from streams.model.codec import SCHEMA_HEADER, AvroCodec
from streams.model.span import Span
from streams.sink.spans import SpanWriter
from streams.telemetry import Counters

log = logging.getLogger("tracepipe.sink")

STAGE = "span-sink"


def header_value(headers: Any, name: str) -> str | None:
    """A header's value as text from a Faust event's headers (a dict or a list of pairs)."""
    if not headers:
        return None
    items = headers.items() if isinstance(headers, dict) else headers
    for key, value in items:
        if key == name:
            return value.decode() if isinstance(value, bytes | bytearray) else str(value)
    return None


def split_batch(
    codec: AvroCodec, events: Sequence[Any], source_topic: str
) -> tuple[list[Span], list[DeadLetter]]:
    """Decode a batch of raw events into spans and the dead letters of those that did not."""
    spans: list[Span] = []
    rejected: list[DeadLetter] = []
    for event in events:
        message = event.message
        value = message.value if message.value is not None else b""
        try:
            spans.append(codec.decode(value, header_value(message.headers, SCHEMA_HEADER)))
        except DecodeError as err:
            rejected.append(
                dead_letter(
                    key=message.key,
                    value=value,
                    stage=STAGE,
                    reason=err.reason,
                    detail=err.detail,
                    source_topic=source_topic,
                    source_partition=message.partition,
                    source_offset=message.offset,
                )
            )
    return spans, rejected


def abandon(app: faust.App, events: Sequence[Any]) -> None:
    """Keep events from being committed when a batch is interrupted before it was stored.

    Faust's take buffer acks its events in a `finally`, even when the worker stops mid-batch;
    marking the messages acked here (without the consumer's bookkeeping) makes that ack a no-op,
    so their offsets stay uncommitted and the batch is redelivered after restart.
    """
    unacked = getattr(app.consumer, "_unacked_messages", None)
    for event in events:
        event.message.acked = True
        if unacked is not None:
            unacked.discard(event.message)


def register_span_sink(
    app: faust.App,
    spans_topic: faust.TopicT,
    dlq_topic: faust.TopicT,
    writer: SpanWriter,
    config: SpanSinkConfig,
    counters: Counters,
) -> faust.types.AgentT[Any]:
    """Attach the span-sink agent to `app`."""
    codec = AvroCodec("span")
    counters.describe("tracepipe_dlq_records_total", "Records sent to the dead-letter topic.")
    counters.describe("tracepipe_spans_consumed_total", "Records read from tracepipe.spans.")

    async def span_sink(stream: faust.StreamT[bytes]) -> None:
        # take_events exists on faust-streaming's Stream but not on its StreamT protocol.
        async for events in stream.take_events(  # type: ignore[attr-defined]
            config.batch_max_spans, within=config.batch_max_wait_ms / 1000
        ):
            try:
                spans, rejected = split_batch(codec, events, spans_topic.get_topic_name())
                counters.inc("tracepipe_spans_consumed_total", len(events), stage=STAGE)
                for letter in rejected:
                    await send_dead_letter(dlq_topic, letter, counters)
                await writer.write(spans)
            except asyncio.CancelledError:
                abandon(app, events)
                raise

    return app.agent(spans_topic, name="tracepipe.span-sink")(span_sink)


async def send_dead_letter(dlq_topic: faust.TopicT, letter: DeadLetter, counters: Counters) -> None:
    """Publish one dead letter and wait until the broker has it; count it by reason."""
    reason = letter.header(REASON_HEADER) or "unknown"
    stage = letter.header(STAGE_HEADER) or "unknown"
    delivery = await dlq_topic.send(key=letter.key, value=letter.value, headers=letter.headers)
    await delivery
    counters.inc("tracepipe_dlq_records_total", reason=reason, stage=stage)
    log.warning("sent record to %s: %s", dlq_topic.get_topic_name(), reason)
