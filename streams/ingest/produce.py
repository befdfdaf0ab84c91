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
from streams.errors import DecodeError, InputError
from streams.ingest import detect_format, spans_from_payload, validate_span
from streams.sdk import SpanProducer

PROGRESS_EVERY_S = 1.0


@dataclass
class ProduceReport:
    """What a produce run did: payloads read, spans sent, rejections by reason (and the first
    rejection of each reason in full, for the user to fix it)."""

    payloads: int = 0
    spans_sent: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    first_errors: dict[str, str] = field(default_factory=dict)

    def reject(self, err: DecodeError, where: str) -> None:
        """Count a rejection; keep its detail if it is the first of its reason."""
        self.rejected[err.reason] += 1
        self.first_errors.setdefault(err.reason, f"({where}): {err.detail}")

    def summary(self) -> str:
        """One human line."""
        line = f"sent {self.spans_sent} spans from {self.payloads} payloads"
        if self.rejected:
            reasons = ", ".join(f"{r}={n}" for r, n in sorted(self.rejected.items()))
            line += f"; rejected {sum(self.rejected.values())} ({reasons})"
        return line

    def error_lines(self) -> list[str]:
        """The first rejection of each reason: reason, where in the input, and why."""
        return [f"{reason} {self.first_errors[reason]}" for reason in sorted(self.first_errors)]


def read_input(path: str) -> bytes:
    """The bytes of the file `path` ("-": stdin); InputError when it cannot be read or is empty."""
    name = "stdin" if path == "-" else path
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as handle:
                data = handle.read()
    except OSError as err:
        raise InputError(f"cannot read spans from {name}: {err.strerror or err}") from err
    if not data.strip():
        raise InputError(f"no spans to send: {name} is empty")
    return data


def split_payloads(data: bytes) -> Iterator[tuple[int, bytes]]:
    """The payloads in a file, each with its line (0: the whole file): one JSON document, JSON
    lines (one payload a line), or protobuf. JSON that does not parse as one document is JSON
    lines when its first line parses alone, else one malformed document (its parse error then
    gives the position in the file)."""
    stripped = data.strip()
    if not stripped:
        return
    if stripped[:1] not in (b"{", b"["):
        yield 0, data
        return
    try:
        json.loads(stripped)
    except (ValueError, RecursionError):
        lines = data.splitlines()
        first = next(i for i, line in enumerate(lines) if line.strip())
        if not _parses(lines[first]):
            yield 0, data
            return
        # JSON lines, as a Collector's file exporter writes them.
        for number, line in enumerate(lines, 1):
            if line.strip():
                yield number, line
        return
    yield 0, stripped


def _parses(line: bytes) -> bool:
    try:
        json.loads(line)
    except (ValueError, RecursionError):
        return False
    return True


def _where(line: int) -> str:
    return f"line {line}" if line else "the input"


def produce_payloads(
    data: bytes,
    settings: Settings,
    source_format: str = "auto",
    raw: bool = False,
    progress: TextIO | None = None,
) -> ProduceReport:
    """Send every span in `data`; rejected spans are counted by reason, never sent. `progress`
    (e.g. sys.stderr) gets a running count every second."""
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
        for line, payload in split_payloads(data):
            report.payloads += 1
            try:
                fmt = detect_format(payload) if source_format == "auto" else source_format
            except DecodeError as err:
                report.reject(err, _where(line))
                continue
            topic = topics.zipkin if fmt == "zipkin_json" else topics.otlp
            producer.produce(topic, payload)
            producer.poll(0)
        producer.flush(30)
        return report
    with SpanProducer(settings.kafka.bootstrap, topics.spans) as span_producer:
        for line, payload in split_payloads(data):
            report.payloads += 1
            try:
                fmt = detect_format(payload) if source_format == "auto" else source_format
                spans = spans_from_payload(payload, fmt)
            except DecodeError as err:
                report.reject(err, _where(line))
                continue
            for span in spans:
                try:
                    span_producer.send(validate_span(span, settings.ingest))
                    report.spans_sent += 1
                except DecodeError as err:
                    report.reject(err, f"{_where(line)}, span {span['span_id']!r:.40}")
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
