"""What tracepipe.traces carries, on the real broker: each trace's summary, span ids and the
service-graph calls paired at emission by default; the full spans too with
assembly.include_spans, for users who consume the topic."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from streams.assemble.graph import edges_from_trace
from streams.assemble.record import TRACE_SCHEMA
from streams.broker.topics import TopicNames
from streams.ingest.produce import produce_payloads
from streams.model.codec import AvroCodec
from streams.model.span import Span, make_span
from streams.sdk import SpanProducer
from tests.integration.isolated import read_topic, running_worker

pytestmark = pytest.mark.integration
MS = 1_000_000
TRACES = 10
QUICK_EMISSION = {
    "TRACEPIPE_ASSEMBLY_TRACE_IDLE_MS": "1000",
    "TRACEPIPE_ASSEMBLY_SWEEP_INTERVAL_MS": "200",
}
"""Traces emitted a second after their last span, swept five times a second."""


def trace(rng: random.Random, now_ns: int) -> list[Span]:
    """A frontend request that queries a database nobody instruments: two calls."""
    trace_id = f"{rng.getrandbits(128) | 1:032x}"
    root = f"{rng.getrandbits(64) | 1:016x}"
    return [
        make_span(trace_id, root, "GET /cart", "frontend", now_ns, now_ns + 9 * MS, kind="SERVER"),
        make_span(
            trace_id,
            f"{rng.getrandbits(64) | 1:016x}",
            "SELECT",
            "frontend",
            now_ns + MS,
            now_ns + 3 * MS,
            parent_span_id=root,
            kind="CLIENT",
            attributes={"db.system": "postgresql"},
        ),
    ]


@pytest.mark.parametrize("include_spans", ["", "true"], ids=["default", "include_spans"])
def test_trace_records_carry_calls_and_span_ids_or_spans(
    kafka_bootstrap: str, tmp_path: Path, include_spans: str
) -> None:
    rng = random.Random(8)
    now_ns = time.time_ns()
    traces = {t[0]["trace_id"]: t for t in (trace(rng, now_ns) for _ in range(TRACES))}
    env = {"TRACEPIPE_ASSEMBLY_INCLUDE_SPANS": include_spans} if include_spans else {}
    with running_worker(kafka_bootstrap, tmp_path, **QUICK_EMISSION, **env) as worker:
        topics = TopicNames.from_prefix(worker.settings.kafka.topic_prefix)
        with SpanProducer(worker.settings.kafka.bootstrap, topics.spans) as producer:
            for spans in traces.values():
                producer.send_many(spans)
        records = read_topic(
            worker.settings.kafka.bootstrap,
            topics.traces,
            AvroCodec(TRACE_SCHEMA),
            lambda seen: len(seen) >= TRACES,
            timeout_s=90,
        )
        reader = worker.reader()
        worker.wait_for(
            lambda: (
                reader.query_dicts("SELECT count() AS n FROM tracepipe_traces")[0]["n"] >= TRACES
            ),
            60,
            "trace rows stored",
        )

    assert sorted(r["trace_id"] for r in records) == sorted(traces)
    for record in records:
        sent = traces[record["trace_id"]]
        ids = sorted(s["span_id"] for s in sent)
        if include_spans:
            assert sorted(record["spans"], key=lambda s: s["span_id"]) == sorted(
                sent, key=lambda s: s["span_id"]
            )
            assert record["span_ids"] == []
        else:
            assert record["spans"] == []
            assert sorted(record["span_ids"]) == ids
        calls = [
            (c["client"], c["server"], c["connection_type"], c["span_id"], c["duration_ns"])
            for c in record["calls"]
        ]
        expected = [
            (e.client, e.server, e.connection_type, e.span_id, e.duration_ns)
            for e in edges_from_trace(sent)
        ]
        assert calls == expected
        assert {(c[0], c[1]) for c in calls} == {("user", "frontend"), ("frontend", "postgresql")}


def zipkin_payloads(now_us: int) -> tuple[bytes, dict[str, list[list[Any]]]]:
    """Two Zipkin traces as JSON lines, one span per payload (as reporters that flush each span
    send them), and the dependency links Zipkin computes for each (DependencyLinkerTest's
    linksSpans trace, and messaging through a broker named on both sides)."""

    def span(trace: str, id_: str, kind: str, local: str, remote: str = "", **extra: Any) -> str:
        fields: dict[str, Any] = {
            "traceId": trace.rjust(32, "0"),
            "id": id_.rjust(16, "0"),
            "name": f"{kind.lower()} {local}",
            "kind": kind,
            "timestamp": now_us,
            "duration": 1000,
            "localEndpoint": {"serviceName": local},
            **extra,
        }
        if remote:
            fields["remoteEndpoint"] = {"serviceName": remote}
        return json.dumps([fields])

    rpc, messaging = "1a", "2b"
    lines = [
        span(rpc, "c", "CLIENT", "app", "db", parentId="b".rjust(16, "0"), tags={"error": ""}),
        span(rpc, "b", "SERVER", "app", "web", parentId="a".rjust(16, "0"), shared=True),
        span(rpc, "b", "CLIENT", "web", "app", parentId="a".rjust(16, "0")),
        span(rpc, "a", "SERVER", "web"),
        span(messaging, "a", "PRODUCER", "orders", "kafka"),
        span(messaging, "b", "CONSUMER", "billing", "kafka", parentId="a".rjust(16, "0")),
    ]
    links = {
        rpc.rjust(32, "0"): [["app", "db", 1, 1], ["web", "app", 1, 0]],
        messaging.rjust(32, "0"): [["kafka", "billing", 1, 0], ["orders", "kafka", 1, 0]],
    }
    return "\n".join(lines).encode(), links


def latest_span_counts(records: list[dict[str, Any]]) -> dict[str, int]:
    """Each trace's span count in its latest version."""
    return {r["trace_id"]: r["span_count"] for r in sorted(records, key=lambda r: r["version"])}


def test_zipkin_traces_carry_zipkin_dependency_links(kafka_bootstrap: str, tmp_path: Path) -> None:
    # Through the worker's Zipkin bridge: the pairing knows the spans' origin and links them as
    # Zipkin does (no "user" node, producer -> broker -> consumer, one call per shared RPC).
    data, links = zipkin_payloads(time.time_ns() // 1000)
    with running_worker(kafka_bootstrap, tmp_path, **QUICK_EMISSION) as worker:
        topics = TopicNames.from_prefix(worker.settings.kafka.topic_prefix)
        assert produce_payloads(data, worker.settings, raw=True, progress=None).payloads == 6
        records = read_topic(
            worker.settings.kafka.bootstrap,
            topics.traces,
            AvroCodec(TRACE_SCHEMA),
            lambda seen: sum(latest_span_counts(seen).values()) >= 6,
            timeout_s=90,
        )

    calls: dict[str, Counter[tuple[str, str]]] = {t: Counter() for t in links}
    errors: dict[str, Counter[tuple[str, str]]] = {t: Counter() for t in links}
    for record in records:
        for call in record["calls"]:
            calls[record["trace_id"]][call["client"], call["server"]] += 1
            errors[record["trace_id"]][call["client"], call["server"]] += call["error"]
    got = {
        trace_id: sorted([c, s, n, errors[trace_id][c, s]] for (c, s), n in counted.items())
        for trace_id, counted in calls.items()
    }
    assert got == links
