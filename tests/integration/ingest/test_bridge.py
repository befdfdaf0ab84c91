"""The bridge on the real broker: OTLP and Zipkin payloads arrive in otel_traces as canonical
spans with their trace and parent structure; malformed payloads on every ingest topic end in the
DLQ with a reason while every valid span around them is stored, counted exactly."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from streams.broker.topics import TopicNames
from streams.config import IngestConfig
from streams.deadletter import REASON_HEADER, STAGE_HEADER
from streams.errors import DecodeError
from streams.ingest import spans_from_payload, validate_span
from streams.ingest.bridge import payload_format
from streams.model.codec import AvroCodec
from streams.model.span import make_span
from streams.query import count_spans, quote
from streams.sink.spans import DEDUPLICATED_SPANS
from streams.worker_process import WorkerProcess
from tests.integration.isolated import running_worker
from tests.unit.ingest.test_bridge_batch import otlp_any_value
from tests.unit.ingest.test_golden import otlp_proto_bytes
from tests.unit.model.test_attribute_text import GOLDEN

pytestmark = pytest.mark.integration

TESTDATA = Path(__file__).parents[2] / "testdata" / "ingest"
CODEC = AvroCodec("span")
LIMITS = IngestConfig()


@pytest.fixture(scope="module")
def worker(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    with running_worker(kafka_bootstrap, tmp_path_factory.mktemp("bridge")) as proc:
        yield proc


def topics_of(worker: WorkerProcess) -> TopicNames:
    return TopicNames.from_prefix(worker.settings.kafka.topic_prefix)


def stored_structure(worker: WorkerProcess, trace_ids: set[str]) -> set[tuple[str, ...]]:
    ids = ", ".join(quote(t) for t in sorted(trace_ids))
    rows = worker.reader().query_dicts(
        "SELECT TraceId, SpanId, ParentSpanId, ServiceName, SpanName FROM otel_traces "
        f"WHERE TraceId IN ({ids})"
    )
    return {tuple(r.values()) for r in rows}


def expected_structure(name: str) -> set[tuple[str, ...]]:
    spans = json.loads((TESTDATA / name).read_text())
    return {
        (s["trace_id"], s["span_id"], s["parent_span_id"], s["service_name"], s["name"])
        for s in spans
    }


def test_otlp_proto_and_zipkin_become_canonical_spans(worker: WorkerProcess) -> None:
    topics = topics_of(worker)
    producer = Producer({"bootstrap.servers": worker.settings.kafka.bootstrap})
    producer.produce(topics.otlp, otlp_proto_bytes((TESTDATA / "otlp_trace.json").read_bytes()))
    producer.produce(topics.zipkin, (TESTDATA / "zipkin_spans.json").read_bytes())
    assert producer.flush(30) == 0

    otlp = expected_structure("otlp_trace.spans.json")
    zipkin = expected_structure("zipkin_spans.spans.json")
    trace_ids = {s[0] for s in otlp | zipkin}
    worker.wait_for(
        lambda: len(stored_structure(worker, trace_ids)) >= len(otlp | zipkin),
        90,
        "bridged spans in otel_traces",
    )
    assert stored_structure(worker, trace_ids) == otlp | zipkin
    formats = worker.reader().query_dicts(
        "SELECT SpanAttributes['tracepipe.source_format'] AS f, count() AS n FROM otel_traces "
        "GROUP BY f ORDER BY f"
    )
    assert formats == [
        {"f": "otlp_proto", "n": len(otlp)},
        {"f": "zipkin_json", "n": len(zipkin)},
    ]


def rejected_locally(topic_kind: str, value: bytes) -> bool:
    """Whether the pure ingest code rejects this payload outright (sanity for the fuzz cases)."""
    try:
        if topic_kind == "spans":
            validate_span(CODEC.decode(value), LIMITS)
            return False
        spans = spans_from_payload(value, payload_format(topic_kind, value))
        for span in spans:
            validate_span(span, LIMITS)
        return False
    except DecodeError:
        return True


def _valid_otlp() -> bytes:
    return otlp_proto_bytes((TESTDATA / "otlp_trace.json").read_bytes())


malformed = st.one_of(
    st.tuples(st.just("spans"), st.binary(max_size=300)),
    st.tuples(st.just("otlp"), st.integers(1, 400).map(lambda n: _valid_otlp()[:-n])),
    st.tuples(st.just("otlp"), st.text(max_size=60).map(lambda t: ("{" + t).encode())),
    st.tuples(st.just("zipkin"), st.text(max_size=80).map(str.encode)),
    st.tuples(
        st.just("zipkin"),
        st.text(alphabet="0123456789abcdefXYZ", max_size=40).map(
            lambda t: json.dumps([{"traceId": t, "id": t, "name": "x", "timestamp": 1}]).encode()
        ),
    ),
)


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(malformed, min_size=5, max_size=25), st.randoms(use_true_random=False))
def test_fuzzed_malformed_payloads_go_to_the_dlq(
    worker: WorkerProcess, bad: list[tuple[str, bytes]], rng: random.Random
) -> None:
    for topic_kind, value in bad:
        assume(rejected_locally(topic_kind, value))
    topics = topics_of(worker)
    run = f"fuzz-{time.time_ns()}"
    now = time.time_ns()
    valid = [
        # Distinct ids whatever the drawn randomness (Hypothesis draws zeros first): copies of
        # one span would be one span to every query.
        make_span(
            f"{rng.getrandbits(96) << 32 | i + 1:032x}",
            f"{rng.getrandbits(32) << 32 | i + 1:016x}",
            "op",
            run,
            now,
            now + 1_000,
        )
        for i in range(40)
    ]
    producer = Producer({"bootstrap.servers": worker.settings.kafka.bootstrap})
    records: list[tuple[str, bytes, bytes]] = [
        (topics.spans, s["trace_id"].encode(), CODEC.encode(s)) for s in valid
    ] + [(getattr(topics, kind), run.encode(), value) for kind, value in bad]
    rng.shuffle(records)
    for topic, key, value in records:
        producer.produce(
            topic, value, key, headers=CODEC.headers if topic == topics.spans else None
        )
    assert producer.flush(30) == 0

    reader = worker.reader()
    where = f"ServiceName = {quote(run)}"
    worker.wait_for(lambda: count_spans(reader, where) >= len(valid), 90, "valid spans stored")

    consumer = Consumer(
        {
            "bootstrap.servers": worker.settings.kafka.bootstrap,
            "group.id": run,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topics.dlq])
    letters: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while len(letters) < len(bad) and time.monotonic() < deadline:
        msg = consumer.poll(1)
        if msg is None or msg.error() is not None or msg.key() != run.encode():
            continue
        headers = {
            k: v.decode() for k, v in dict(msg.headers() or []).items() if isinstance(v, bytes)
        }
        letters.append({"value": msg.value() or b"", **headers})
    consumer.close()

    assert len(letters) == len(bad), f"{len(letters)} dead letters for {len(bad)} bad payloads"
    assert all(letter[REASON_HEADER] for letter in letters)
    assert {letter[STAGE_HEADER] for letter in letters} <= {"span-sink", "bridge"}
    assert count_spans(reader, where) == len(valid)
    assert worker.process is not None and worker.process.poll() is None


def test_otel_traces_holds_the_collectors_attribute_text(worker: WorkerProcess) -> None:
    """Every golden attribute value (tests/unit/model/test_attribute_text.py), sent as an OTLP
    request, reads back from otel_traces as the text the Collector's ClickHouse exporter writes
    for it: a query written for Collector data gives the same answer here."""
    trace_id = f"{time.time_ns():032x}"
    now = time.time_ns()
    request = {
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name",
                                         "value": {"stringValue": "golden"}}]},
            "scopeSpans": [{"spans": [{
                "traceId": trace_id, "spanId": "00f067aa0ba902b7", "name": "texts", "kind": 2,
                "startTimeUnixNano": str(now), "endTimeUnixNano": str(now + 1_000),
                "attributes": [{"key": case, "value": otlp_any_value(value)}
                               for case, value, _ in GOLDEN],
            }]}],
        }]
    }  # fmt: skip
    producer = Producer({"bootstrap.servers": worker.settings.kafka.bootstrap})
    producer.produce(topics_of(worker).otlp, otlp_proto_bytes(json.dumps(request).encode()))
    assert producer.flush(30) == 0

    reader = worker.reader()
    where = f"TraceId = {quote(trace_id)}"
    worker.wait_for(lambda: count_spans(reader, where) >= 1, 90, "the golden span stored")
    (row,) = reader.query_dicts(f"SELECT SpanAttributes FROM {DEDUPLICATED_SPANS} WHERE {where}")
    assert row["SpanAttributes"] == {
        **{case: text for case, _, text in GOLDEN},
        "tracepipe.source_format": "otlp_proto",
    }
