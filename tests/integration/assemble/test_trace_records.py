"""What tracepipe.traces carries, on the real broker: each trace's summary, span ids and the
service-graph calls paired at emission by default; the full spans too with
assembly.include_spans, for users who consume the topic."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from streams.assemble.graph import edges_from_trace
from streams.assemble.record import TRACE_SCHEMA
from streams.broker.topics import TopicNames
from streams.model.codec import AvroCodec
from streams.model.span import Span, make_span
from streams.sdk import SpanProducer
from tests.integration.isolated import read_topic, running_worker

pytestmark = pytest.mark.integration
MS = 1_000_000
TRACES = 10


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
    with running_worker(
        kafka_bootstrap,
        tmp_path,
        TRACEPIPE_ASSEMBLY_TRACE_IDLE_MS="1000",
        TRACEPIPE_ASSEMBLY_SWEEP_INTERVAL_MS="200",
        **env,
    ) as worker:
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
