"""Trace assembly on the real broker and chDB: every trace emitted exactly once with the right
span count, and a late span re-emits its trace as version 2."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.broker.topics import TopicNames
from streams.cli import main
from streams.model.span import Span, make_span
from streams.query import quote
from streams.sdk import SpanProducer
from streams.worker_process import WorkerProcess
from tests.integration.isolated import running_worker

pytestmark = pytest.mark.integration

TRACES = 10_000
SPANS_PER_TRACE = 3


@pytest.fixture
def assembling_worker(kafka_bootstrap: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    with running_worker(
        kafka_bootstrap,
        tmp_path,
        TRACEPIPE_ASSEMBLY_TRACE_IDLE_MS="8000",
        TRACEPIPE_ASSEMBLY_TRACE_MAX_AGE_MS="60000",
        TRACEPIPE_ASSEMBLY_SWEEP_INTERVAL_MS="200",
    ) as proc:
        yield proc


def trace_spans(rng: random.Random, now_ns: int) -> list[Span]:
    trace_id = f"{rng.getrandbits(128) | 1:032x}"
    root = f"{rng.getrandbits(64) | 1:016x}"
    spans = [
        make_span(
            trace_id, root, "GET /checkout", "frontend", now_ns, now_ns + 90_000, kind="SERVER"
        )
    ]
    for i in range(SPANS_PER_TRACE - 1):
        spans.append(
            make_span(
                trace_id,
                f"{rng.getrandbits(64) | 1:016x}",
                f"call{i}",
                f"svc{i}",
                now_ns + 10_000 * (i + 1),
                now_ns + 10_000 * (i + 2),
                parent_span_id=root,
                kind="CLIENT",
            )
        )
    return spans


def test_every_trace_once_then_a_late_span_makes_version_two(
    assembling_worker: WorkerProcess,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    worker = assembling_worker
    rng = random.Random(5)
    now_ns = time.time_ns()
    # Shuffled across time and partitions, within windows of 200 traces: a trace's spans arrive
    # out of order but close together, as from real services, well inside trace_idle.
    spans: list[Span] = []
    for _ in range(TRACES // 200):
        window = [s for _ in range(200) for s in trace_spans(rng, now_ns)]
        rng.shuffle(window)
        spans.extend(window)
    topic = TopicNames.from_prefix(worker.settings.kafka.topic_prefix).spans
    with SpanProducer(worker.settings.kafka.bootstrap, topic) as producer:
        producer.send_many(spans)

    reader = worker.reader()

    def stored_traces() -> int:
        return int(reader.query_dicts("SELECT count() AS n FROM tracepipe_traces")[0]["n"])

    worker.wait_for(lambda: stored_traces() >= TRACES, 240, f"{TRACES} traces stored")
    # Every spans message is released (acknowledged) once the traces it fed are emitted and
    # their marks are on the changelog, which waits for the edge windows of their calls: with
    # no more spans coming, the idle rule closes those about partition_idle_ms + lateness
    # (30 s + 30 s by default) after the last trace is emitted.
    worker.wait_for(
        lambda: worker.stats()["assembly"]["held_span_messages"] == 0, 150, "spans released"
    )
    # The assembler's gauges (what the benchmark's memory per held trace divides by): every
    # trace emitted, and each still remembered, spans and all, for late spans.
    gauges = worker.stats()["assembly"]
    assert gauges["mark_records"] >= 2
    assert {k: v for k, v in gauges.items() if k != "mark_records"} == {
        "open_traces": 0,
        "retained_traces": TRACES,
        "tombstones": 0,
        "held_span_messages": 0,
    }
    summary = reader.query_dicts(
        "SELECT count() AS rows, uniqExact(TraceId) AS traces, min(SpanCount) AS min_spans, "
        "max(SpanCount) AS max_spans, max(Version) AS max_version, "
        "countIf(Completion = 'complete') AS complete, sum(ErrorCount) AS errors "
        "FROM tracepipe_traces"
    )[0]
    assert summary == {
        "rows": TRACES,
        "traces": TRACES,
        "min_spans": SPANS_PER_TRACE,
        "max_spans": SPANS_PER_TRACE,
        "max_version": 1,
        "complete": TRACES,
        "errors": 0,
    }
    # The critical path of every trace is its root's own time plus the two sequential calls.
    path = reader.query_dicts(
        "SELECT count() AS rows, uniqExact(TraceId) AS traces FROM tracepipe_critical_path"
    )[0]
    assert path["traces"] == TRACES

    late_trace = spans[0]["trace_id"]
    late = make_span(
        late_trace,
        f"{rng.getrandbits(64) | 1:016x}",
        "late",
        "latecomer",
        now_ns + 50_000,
        now_ns + 60_000,
        parent_span_id="",
    )
    with SpanProducer(worker.settings.kafka.bootstrap, topic) as producer:
        producer.send(late)

    def latest() -> dict[str, int]:
        rows = reader.query_dicts(
            "SELECT Version, SpanCount FROM tracepipe_traces FINAL "
            f"WHERE TraceId = {quote(late_trace)}"
        )
        return {"version": rows[0]["Version"], "spans": rows[0]["SpanCount"]} if rows else {}

    worker.wait_for(lambda: latest().get("version") == 2, 60, "version 2 of the late trace")
    assert latest() == {"version": 2, "spans": SPANS_PER_TRACE + 1}
    # Nothing else re-emitted: one trace at version 2, the rest still at 1. (Counted with FINAL:
    # a background merge may already have replaced the late trace's version-1 row.)
    versions = reader.query_dicts(
        "SELECT count() AS traces, countIf(Version > 1) AS later FROM tracepipe_traces FINAL"
    )[0]
    assert versions == {"traces": TRACES, "later": 1}

    # The CLI shows it through the running worker: summary, then the waterfall.
    for name, value in worker.env.items():
        if name.startswith("TRACEPIPE_"):
            monkeypatch.setenv(name, value)
    assert main(["trace", late_trace]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"trace {late_trace}  version 2  ")
    assert f"{SPANS_PER_TRACE + 1} spans" in out[0]
    assert any(line.startswith("frontend: GET /checkout") and "*" in line for line in out)
    assert any("latecomer: late" in line for line in out)
