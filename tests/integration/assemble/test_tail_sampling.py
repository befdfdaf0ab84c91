"""Tail sampling on the real broker: otel_traces gets exactly the kept traces' spans (errors and
slow ones), tracepipe_traces gets every trace with its decision, and a late span of a kept trace
adds one span, not a second copy of the others."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from streams.broker.topics import TopicNames
from streams.model.span import Span, make_span
from streams.query import count_spans, quote
from streams.sdk import SpanProducer
from tests.integration.isolated import running_worker

pytestmark = pytest.mark.integration
MS = 1_000_000


def trace(rng: random.Random, now_ns: int, duration_ms: int, error: bool) -> list[Span]:
    trace_id = f"{rng.getrandbits(128) | 1:032x}"
    root = f"{rng.getrandbits(64) | 1:016x}"
    return [
        make_span(
            trace_id,
            root,
            "GET /cart",
            "frontend",
            now_ns,
            now_ns + duration_ms * MS,
            kind="SERVER",
            status_code="ERROR" if error else "OK",
        ),
        make_span(
            trace_id,
            f"{rng.getrandbits(64) | 1:016x}",
            "SELECT",
            "db",
            now_ns + MS,
            now_ns + 2 * MS,
            parent_span_id=root,
            kind="CLIENT",
        ),
    ]


def test_only_kept_traces_reach_otel_traces(kafka_bootstrap: str, tmp_path: Path) -> None:
    rng = random.Random(4)
    now_ns = time.time_ns()
    errors = [trace(rng, now_ns, 5, True) for _ in range(20)]
    slow = [trace(rng, now_ns, 120, False) for _ in range(20)]
    fast = [trace(rng, now_ns, 5, False) for _ in range(60)]
    with running_worker(
        kafka_bootstrap,
        tmp_path,
        TRACEPIPE_SAMPLING_ENABLED="true",
        TRACEPIPE_SAMPLING_PROBABILITY="0",
        TRACEPIPE_SAMPLING_LATENCY_THRESHOLD_MS="50",
        TRACEPIPE_ASSEMBLY_TRACE_IDLE_MS="1500",
        TRACEPIPE_ASSEMBLY_SWEEP_INTERVAL_MS="200",
    ) as worker:
        topic = TopicNames.from_prefix(worker.settings.kafka.topic_prefix).spans
        with SpanProducer(worker.settings.kafka.bootstrap, topic) as producer:
            for spans in errors + slow + fast:
                producer.send_many(spans)
        reader = worker.reader()

        def traces_stored() -> int:
            return int(reader.query_dicts("SELECT count() AS n FROM tracepipe_traces")[0]["n"])

        worker.wait_for(lambda: traces_stored() >= 100, 90, "100 trace records")
        decisions = reader.query_dicts(
            "SELECT SamplingPolicy AS policy, Sampled AS kept, count() AS n FROM tracepipe_traces "
            "GROUP BY policy, kept ORDER BY policy"
        )
        assert decisions == [
            {"policy": "dropped", "kept": False, "n": 60},
            {"policy": "error", "kept": True, "n": 20},
            {"policy": "latency", "kept": True, "n": 20},
        ]
        worker.wait_for(lambda: count_spans(reader) >= 80, 30, "kept spans in otel_traces")
        stored = {r["TraceId"] for r in reader.query_dicts("SELECT TraceId FROM otel_traces")}
        assert stored == {t[0]["trace_id"] for t in errors + slow}
        assert count_spans(reader) == 80

        kept_trace = errors[0][0]["trace_id"]
        late = make_span(
            kept_trace,
            f"{rng.getrandbits(64) | 1:016x}",
            "late",
            "frontend",
            now_ns + 3 * MS,
            now_ns + 4 * MS,
            parent_span_id=errors[0][0]["span_id"],
        )
        with SpanProducer(worker.settings.kafka.bootstrap, topic) as producer:
            producer.send(late)
        where = f"TraceId = {quote(kept_trace)}"
        worker.wait_for(lambda: count_spans(reader, where) >= 3, 30, "the late span stored")
        time.sleep(1)
        assert count_spans(reader, where) == 3
        assert count_spans(reader) == 81
