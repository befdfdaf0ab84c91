"""Delivering and storing alert events: two thin Faust agents on tracepipe.alerts.

alert sink:        tracepipe.alerts ─ batches ─> tracepipe_alerts (every transition)
                   undecodable records ─> tracepipe.dlq (reason from the codec)
webhook forwarder: tracepipe.alerts ─ firing/resolved ─> POST to each alert.webhook_urls
                   (Alertmanager JSON, retried with backoff); given up ─> tracepipe.dlq
                   (reason `webhook-failed`, the URL and the last error in the detail)

Each agent reads every record (Faust hands a message to every channel on its topic and
commits it once all have acknowledged it). A batch's offsets are acknowledged only after its
rows are stored, and after each of its events was delivered or parked, so a worker stopped
mid-retry redelivers the batch after restart instead of losing it (a receiver may then see an
event twice: deduplicate by fingerprint and status).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import faust

from streams.alert.events import AlertEvent
from streams.alert.webhook import WebhookForwarder, forwarded, redact_url, webhook_urls
from streams.config import AlertConfig
from streams.deadletter import dead_letter, rejected_event
from streams.errors import DecodeError
from streams.model.codec import SCHEMA_HEADER, AvroCodec, header_value
from streams.sink.alerts import ALERTS, ALERTS_COLUMNS, alert_row
from streams.sink.writer import WarehouseWriter
from streams.telemetry import Counters
from streams.worker.batch import held, send_dead_letter

log = logging.getLogger("tracepipe.alert")

SINK_STAGE = "alert-sink"
WEBHOOK_STAGE = "alert-webhook"
WEBHOOK_FAILED = "webhook-failed"
"""Dead-letter reason of an event every webhook attempt failed for."""
SINK_BATCH = 500
SINK_WAIT_S = 0.5
WEBHOOK_BATCH = 100
WEBHOOK_WAIT_S = 0.2


def _decode(codec: AvroCodec, event: Any) -> dict[str, Any]:
    message = event.message
    record: dict[str, Any] = codec.decode(
        message.value or b"", header_value(message.headers, SCHEMA_HEADER)
    )
    return record


def register_alert_delivery(
    app: faust.App,
    alerts_topic: faust.TopicT,
    dlq_topic: faust.TopicT,
    writer: WarehouseWriter,
    config: AlertConfig,
    counters: Counters,
    external_url: str = "",
) -> None:
    """Attach the alert sink agent and, when `alert.webhook_urls` names any, the webhook
    forwarder agent; `external_url` (the worker's base URL) goes into the notifications."""
    codec = AvroCodec("alert")
    counters.describe("tracepipe_alerts_stored_total", "Alert events stored in tracepipe_alerts.")
    counters.describe("tracepipe_dlq_records_total", "Records sent to the dead-letter topic.")

    async def alert_sink(stream: faust.StreamT[bytes]) -> None:
        # take_events exists on faust-streaming's Stream but not on its StreamT protocol.
        async for events in stream.take_events(  # type: ignore[attr-defined]
            SINK_BATCH, within=SINK_WAIT_S
        ):
            with held(app, events):
                rows = []
                for event in events:
                    try:
                        rows.append(alert_row(_decode(codec, event)))
                    except DecodeError as err:
                        await send_dead_letter(
                            dlq_topic, rejected_event(event, SINK_STAGE, err), counters
                        )
                await writer.write_rows(ALERTS, ALERTS_COLUMNS, rows)
                if rows:
                    counters.inc("tracepipe_alerts_stored_total", len(rows))

    app.agent(alerts_topic, name="tracepipe.alert-sink")(alert_sink)

    urls = webhook_urls(config)
    if not urls:
        return
    forwarder = WebhookForwarder(config, external_url)
    counters.describe(
        "tracepipe_alert_webhook_deliveries_total",
        "Alert events per webhook URL: delivered, or failed (parked in the DLQ).",
    )

    async def deliver_or_park(event: Any, alert: AlertEvent, url: str) -> None:
        result = await forwarder.send(alert, url)
        if result.delivered:
            counters.inc("tracepipe_alert_webhook_deliveries_total", outcome="delivered")
            return
        counters.inc("tracepipe_alert_webhook_deliveries_total", outcome="failed")
        message = event.message
        letter = dead_letter(
            key=message.key,
            value=message.value or b"",
            stage=WEBHOOK_STAGE,
            reason=WEBHOOK_FAILED,
            detail=f"{redact_url(url)}: {result.last_error} ({result.attempts} attempts)",
            source_topic=message.topic,
            source_partition=message.partition,
            source_offset=message.offset,
        )
        await send_dead_letter(dlq_topic, letter, counters)

    async def forward_in_order(items: Sequence[tuple[Any, AlertEvent]]) -> None:
        # One fingerprint's transitions in order (firing before resolved); URLs side by side.
        for event, alert in items:
            async with asyncio.TaskGroup() as group:
                for url in urls:
                    group.create_task(deliver_or_park(event, alert, url))

    async def webhook_forwarder(stream: faust.StreamT[bytes]) -> None:
        async for events in stream.take_events(  # type: ignore[attr-defined]
            WEBHOOK_BATCH, within=WEBHOOK_WAIT_S
        ):
            with held(app, events):
                by_fingerprint: dict[str, list[tuple[Any, AlertEvent]]] = {}
                for event in events:
                    try:
                        alert = AlertEvent.from_record(_decode(codec, event))
                    except DecodeError:
                        continue  # the alert sink sends it to the DLQ
                    if forwarded(alert):
                        by_fingerprint.setdefault(alert.fingerprint, []).append((event, alert))
                async with asyncio.TaskGroup() as group:
                    for items in by_fingerprint.values():
                        group.create_task(forward_in_order(items))

    app.agent(alerts_topic, name="tracepipe.alert-webhook")(webhook_forwarder)
