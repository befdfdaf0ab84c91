"""`tracepipe generate` on the real broker: the spans arrive and decode, at the rate asked, the
same ones for the same seed, through the SDK or the OpenTelemetry exporter."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import pytest

from streams.broker.topics import TopicNames, ensure_topics
from streams.cli import main
from streams.config import load_settings
from streams.model.codec import AvroCodec
from tests.integration.isolated import read_topic

pytestmark = pytest.mark.integration

RATE = 500
DURATION_S = 3
SERVICES = {"frontend", "checkout", "cart", "payment", "shipping", "currency", "inventory"}


def generate(
    bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *extra: str,
) -> list[dict[str, Any]]:
    """Run `tracepipe generate` into topics of its own; the spans read back from its topic."""
    prefix = f"gen-{uuid.uuid4().hex[:8]}."
    monkeypatch.setenv("TRACEPIPE_KAFKA_BOOTSTRAP", bootstrap)
    monkeypatch.setenv("TRACEPIPE_KAFKA_TOPIC_PREFIX", prefix)
    monkeypatch.setenv("TRACEPIPE_KAFKA_PARTITIONS", "3")
    topic = TopicNames.from_prefix(prefix).spans
    ensure_topics(load_settings().kafka, [topic])
    started_ns = time.time_ns()
    # The same ids each run (--id-seed): the tests compare the spans of two runs by id.
    argv = ["generate", "--rate", str(RATE), "--duration", f"{DURATION_S}s", "--seed", "7"]
    argv += ["--id-seed", "7"]
    assert main([*argv, *extra]) == 0
    finished_ns = time.time_ns()
    captured = capsys.readouterr()
    if "--json" in extra:
        totals = json.loads(captured.out)
        assert totals["seed"] == 7 and totals["undelivered"] == 0, totals
        assert totals["spans_per_s"] == pytest.approx(RATE, rel=0.10)
        generated = totals["spans"]
    else:
        summary = re.search(r"generated ([\d,]+) spans in ([\d,]+) traces", captured.out)
        assert summary is not None, captured
        generated = int(summary.group(1).replace(",", ""))
    assert "generate: 500 spans/s for 3 s" in captured.err

    spans = read_topic(
        bootstrap,
        topic,
        AvroCodec("span"),
        lambda records: len(records) >= generated,
        timeout_s=60,
    )
    assert len(spans) == generated
    assert generated == pytest.approx(RATE * DURATION_S, rel=0.10)
    for span in spans:
        assert span["service_name"] in SERVICES
        # Event times are the generator's schedule: from its start, ahead by a tick at most.
        assert started_ns <= span["start_time_unix_nano"] <= finished_ns + 10**9
    return spans


def content(span: dict[str, Any]) -> dict[str, Any]:
    """A span without its timestamps (its duration kept)."""
    return {
        **span,
        "start_time_unix_nano": None,
        "end_time_unix_nano": None,
        "duration_ns": span["end_time_unix_nano"] - span["start_time_unix_nano"],
    }


def by_span_id(spans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {span["span_id"]: content(span) for span in spans}


def test_generate_produces_the_same_traces_for_a_seed(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    first = by_span_id(generate(kafka_bootstrap, monkeypatch, capsys))
    second = by_span_id(generate(kafka_bootstrap, monkeypatch, capsys))
    # The same schedule gives the same spans; only a run stalled past its end would miss some.
    common = first.keys() & second.keys()
    assert len(common) >= 0.9 * max(len(first), len(second))
    assert all(first[k] == second[k] for k in common)
    assert {s["source_format"] for s in first.values()} == {"tracepipe"}
    kinds = {s["kind"] for s in first.values()}
    assert kinds == {"SERVER", "CLIENT", "PRODUCER", "CONSUMER"}


def test_generate_via_the_opentelemetry_exporter(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sdk = by_span_id(generate(kafka_bootstrap, monkeypatch, capsys))
    otel = by_span_id(generate(kafka_bootstrap, monkeypatch, capsys, "--via", "otel"))
    common = sdk.keys() & otel.keys()
    assert len(common) >= 0.9 * max(len(sdk), len(otel))
    for span_id in common:
        assert otel[span_id] == {**sdk[span_id], "source_format": "otel-sdk"}


def test_generate_json_totals_count_what_reached_the_topic(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # generate() checks the JSON's span count against the spans read back from the topic.
    spans = generate(kafka_bootstrap, monkeypatch, capsys, "--json")
    assert len({s["trace_id"] for s in spans}) > 1


@pytest.mark.parametrize("spans_per_message", [1, 500])
def test_spans_per_message_sets_the_wire_format(
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    spans_per_message: int,
) -> None:
    from confluent_kafka import Consumer

    from streams.model.codec import SCHEMA_HEADER
    from streams.model.column_codec import SpanColumnsCodec

    spans = generate(
        kafka_bootstrap, monkeypatch, capsys, "--spans-per-message", str(spans_per_message)
    )
    topic = TopicNames.from_prefix(load_settings().kafka.topic_prefix).spans
    consumer = Consumer(
        {"bootstrap.servers": kafka_bootstrap, "group.id": topic, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    single, batch = AvroCodec("span"), SpanColumnsCodec()
    per_message: list[int] = []
    while sum(per_message) < len(spans):
        msg = consumer.poll(30)
        assert msg is not None and msg.error() is None
        raw = dict(msg.headers() or [])[SCHEMA_HEADER]
        fingerprint = raw.decode() if isinstance(raw, bytes) else None
        if batch.knows(fingerprint):
            per_message.append(len(batch.decode(msg.value() or b"", fingerprint)))
            assert spans_per_message > 1
        else:
            span = single.decode(msg.value() or b"", fingerprint)
            assert msg.key() == span["trace_id"].encode()
            per_message.append(1)
    consumer.close()
    assert sum(per_message) == len(spans)
    if spans_per_message == 1:
        assert set(per_message) == {1}
    else:  # 1,500 spans in 3 s over 3 partitions: batches of many spans
        assert max(per_message) > 10 and len(per_message) < len(spans) / 5
