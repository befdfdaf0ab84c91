"""The assembly stage's Faust wiring: a timer that finishes due traces and publishes them, and
the trace sink agent that stores published traces in ClickHouse.

Spans reach the stage through the span agent (streams.sink.agent), which decodes each span once
for every consumer of tracepipe.spans.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from streams.assemble.record import TRACE_SCHEMA
from streams.assemble.stage import AssemblyStage
from streams.batch_agent import abandon
from streams.model.codec import SCHEMA_HEADER, AvroCodec
from streams.sink.spans import OTEL_TRACES, OTEL_TRACES_COLUMNS, span_row
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
TRACE_SINK_WAIT_S = 0.5


def register_assembly(
    app: faust.App,
    stage: AssemblyStage,
    traces_topic: faust.TopicT,
    writer: WarehouseWriter,
    counters: Counters,
) -> None:
    """Attach the sweep timer (finish due traces, publish them) and the trace sink agent."""
    codec = AvroCodec(TRACE_SCHEMA)
    headers = [(SCHEMA_HEADER, codec.fingerprint.encode())]
    counters.describe("tracepipe_traces_emitted_total", "Trace records published, by completion.")
    counters.describe("tracepipe_traces_stored_total", "Trace records stored in ClickHouse.")

    async def sweep() -> None:
        finished = stage.finish_due()
        if not finished:
            return
        deliveries = []
        for item in finished:
            record = item.record
            deliveries.append(
                await traces_topic.send(
                    key=record["trace_id"].encode(),
                    value=codec.encode(record),
                    headers=headers,
                )
            )
            counters.inc("tracepipe_traces_emitted_total", completion=record["completion"])
        await asyncio.gather(*deliveries)
        if stage.sampling.enabled:
            kept = [span_row(s) for item in finished for s in item.kept_spans]
            await writer.write_rows(OTEL_TRACES, OTEL_TRACES_COLUMNS, kept)

    app.timer(stage.config.sweep_interval_ms / 1000, name="tracepipe.assembly-sweep")(sweep)

    async def trace_sink(stream: faust.StreamT[bytes]) -> None:
        # take_events exists on faust-streaming's Stream but not on its StreamT protocol.
        async for events in stream.take_events(  # type: ignore[attr-defined]
            TRACE_SINK_BATCH, within=TRACE_SINK_WAIT_S
        ):
            try:
                records: list[Any] = [codec.decode(e.message.value) for e in events]
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
            except asyncio.CancelledError:
                abandon(app, events)
                raise

    app.agent(traces_topic, name="tracepipe.trace-sink")(trace_sink)
