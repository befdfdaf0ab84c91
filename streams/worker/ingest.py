"""The bridge agents: foreign encodings on `otlp` and `zipkin` -> canonical spans on `spans`.

Each batch is made by streams.ingest.bridge.bridge_batch: each payload is converted to span
columns and the batch's spans validated a column at a time by the pure functions of
streams.ingest; spans are republished as span batches, one per partition
of `spans` by trace id (so a trace's spans share a partition, and the worker pays Faust's
per-message cost once per batch), and whatever cannot be used goes to the DLQ with its reason.
A batch's offsets are acknowledged only after every span and dead letter from it has been
delivered.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust

from streams.config import IngestConfig
from streams.ingest.bridge import bridge_batch
from streams.model.codec import SCHEMA_HEADER
from streams.model.column_codec import SpanColumnsCodec
from streams.telemetry import Counters
from streams.worker.batch import held, send_dead_letter

BATCH_MAX_RECORDS = 500
BATCH_MAX_WAIT_S = 0.2
"""Largest span columns message the bridge republishes (under the broker's 1 MiB)."""


def register_bridge(
    app: faust.App,
    otlp_topic: faust.TopicT,
    zipkin_topic: faust.TopicT,
    spans_topic: faust.TopicT,
    dlq_topic: faust.TopicT,
    limits: IngestConfig,
    counters: Counters,
    partitions: int,
) -> list[faust.types.AgentT[Any]]:
    """Attach one bridge agent per foreign topic to `app`; `partitions` is the spans topic's."""
    codec = SpanColumnsCodec()
    headers = [(SCHEMA_HEADER, codec.fingerprint.encode())]
    counters.describe("tracepipe_bridge_spans_total", "Spans republished by the bridge.")

    def make(topic_kind: str) -> Any:
        async def bridge(stream: faust.StreamT[bytes]) -> None:
            # take_events exists on faust-streaming's Stream but not on its StreamT protocol.
            async for events in stream.take_events(  # type: ignore[attr-defined]
                BATCH_MAX_RECORDS, within=BATCH_MAX_WAIT_S
            ):
                with held(app, events):
                    batch = bridge_batch(topic_kind, events, limits, partitions, codec)
                    deliveries = [
                        await spans_topic.send(value=value, partition=partition, headers=headers)
                        for partition, value in batch.messages
                    ]
                    await asyncio.gather(*deliveries)
                    for letter in batch.rejected:
                        await send_dead_letter(dlq_topic, letter, counters)
                    counters.inc("tracepipe_bridge_spans_total", batch.spans, source=topic_kind)

        return bridge

    return [
        app.agent(otlp_topic, name="tracepipe.bridge-otlp")(make("otlp")),
        app.agent(zipkin_topic, name="tracepipe.bridge-zipkin")(make("zipkin")),
    ]
