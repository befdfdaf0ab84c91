"""`tracepipe produce`: spans from a file or stdin (OTLP, Zipkin, our JSON) to Kafka.

By default each payload is converted and validated here and the canonical spans are sent to
`spans`; with `raw=True` the payloads go unchanged to the `otlp`/`zipkin` topic for the worker's
bridge, as an OpenTelemetry Collector or a Zipkin reporter would send them.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TextIO

from confluent_kafka import Producer

from streams.broker.topics import TopicNames
from streams.config import Settings
from streams.errors import DecodeError
from streams.ingest import detect_format, spans_from_payload, validate_span
from streams.sdk import SpanProducer

PROGRESS_EVERY_S = 1.0


@dataclass
class ProduceReport:
    """What a produce run did: payloads read, spans sent, rejections by reason."""

    payloads: int = 0
    spans_sent: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        """One human line."""
        line = f"sent {self.spans_sent} spans from {self.payloads} payloads"
        if self.rejected:
            reasons = ", ".join(f"{r}={n}" for r, n in sorted(self.rejected.items()))
            line += f"; rejected {sum(self.rejected.values())} ({reasons})"
        return line


def split_payloads(data: bytes) -> Iterator[bytes]:
    """The payloads in a file: one JSON document, JSON lines (one payload a line), or protobuf."""
    stripped = data.strip()
    if stripped[:1] not in (b"{", b"["):
        yield data
        return
    try:
        json.loads(stripped)
    except ValueError:
        # Not one document: JSON lines, as a Collector's file exporter writes them.
        for line in stripped.splitlines():
            if line.strip():
                yield line
        return
    yield stripped


def produce_payloads(
    data: bytes,
    settings: Settings,
    source_format: str = "auto",
    raw: bool = False,
    progress: TextIO | None = sys.stderr,
) -> ProduceReport:
    """Send every span in `data`; rejected spans are counted by reason, never sent."""
    topics = TopicNames.from_prefix(settings.kafka.topic_prefix)
    report = ProduceReport()
    last_progress = time.monotonic()
    if raw:
        producer = Producer(
            {
                "bootstrap.servers": settings.kafka.bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "compression.type": "lz4",
            }
        )
        for payload in split_payloads(data):
            fmt = detect_format(payload) if source_format == "auto" else source_format
            topic = topics.zipkin if fmt == "zipkin_json" else topics.otlp
            producer.produce(topic, payload)
            producer.poll(0)
            report.payloads += 1
        producer.flush(30)
        return report
    with SpanProducer(settings.kafka.bootstrap, topics.spans) as span_producer:
        for payload in split_payloads(data):
            report.payloads += 1
            try:
                fmt = detect_format(payload) if source_format == "auto" else source_format
                spans = spans_from_payload(payload, fmt)
            except DecodeError as err:
                report.rejected[err.reason] += 1
                continue
            for span in spans:
                try:
                    span_producer.send(validate_span(span, settings.ingest))
                    report.spans_sent += 1
                except DecodeError as err:
                    report.rejected[err.reason] += 1
            if progress is not None and time.monotonic() - last_progress > PROGRESS_EVERY_S:
                last_progress = time.monotonic()
                progress.write(f"\r{report.summary()} ...")
                progress.flush()
        remaining = span_producer.flush(60)
    if remaining:
        report.rejected["not-delivered"] += remaining
        report.spans_sent -= remaining
    if progress is not None:
        progress.write("\r")
    return report
