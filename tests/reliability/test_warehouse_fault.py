"""ClickHouse inserts failing for a while mid-stream (fault injected at the warehouse boundary):
consumption pauses (the group's lag grows and the worker's RSS stays bounded while a producer
keeps publishing), the worker stays alive and counts its retries, and after the outage every
span, trace and latency window is stored and read exactly once. Then inserts that are stored
but answered with an error (`lose-ack`, a connection lost after the commit): the retries store
the batches again, and the product's queries still return each span, trace and window once."""

from __future__ import annotations

import random
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from streams.broker.lag import GroupLag
from streams.broker.topics import TopicNames, ensure_topics
from streams.model.span import Span
from streams.query import WorkerReader, worker_url
from streams.sdk import SpanProducer
from streams.sink.spans import DEDUPLICATED_SPANS, OTEL_TRACES
from streams.warehouse.fault import LOSE_ACK
from streams.worker_process import WorkerProcess
from tests.integration.assemble.test_assembly import SPANS_PER_TRACE, trace_spans
from tests.integration.isolated import isolated_worker

pytestmark = pytest.mark.integration

BEFORE_TRACES = 2_000
DURING_TRACES_PER_S = 2_000
FAULT_S = 20.0
LOSE_ACK_TRACES = 3_000
LOSE_ACK_FAILURES = 4
"""Inserts answered with an error (after storing) before the lost-ack fault ends."""
MIB = 1024 * 1024
# What the worker may add to its resident memory while it cannot store anything and a producer
# keeps publishing ~6,000 spans/s: the take buffer and Faust's stream buffer
# (worker.stream_buffer_maxsize messages), not the ~120,000 spans produced meanwhile. Measured
# +0 MiB; with Faust's default buffer (4096) +25 MiB in 20 s, growing for as long as it lasted.
RSS_GROWTH_BOUND = 64 * MIB
SETTINGS = {
    "TRACEPIPE_ASSEMBLY_TRACE_IDLE_MS": "2000",
    "TRACEPIPE_ASSEMBLY_SWEEP_INTERVAL_MS": "200",
    "TRACEPIPE_AGGREGATION_WINDOW_MS": "10000",
    # Spans produced during the outage are observed after it: their windows must still be open.
    "TRACEPIPE_AGGREGATION_ALLOWED_LATENESS_MS": "45000",
    "TRACEPIPE_AGGREGATION_PARTITION_IDLE_MS": "3000",
    "TRACEPIPE_AGGREGATION_EMIT_INTERVAL_MS": "300",
    "TRACEPIPE_SINK_RETRY_INITIAL_BACKOFF_MS": "100",
    "TRACEPIPE_SINK_RETRY_MAX_BACKOFF_MS": "1000",
}


@dataclass
class OutageReadings:
    """Lag, RSS and retry counts sampled while inserts fail."""

    lag: list[int] = field(default_factory=list)
    rss_bytes: list[int] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    traces_produced: int = 0


def counter_total(metrics: str, name: str) -> int:
    """The sum of every sample of `name` in a Prometheus text page."""
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def metrics_page(worker: WorkerProcess) -> str:
    with urllib.request.urlopen(f"{worker_url(worker.settings)}/metrics", timeout=10) as resp:
        text: str = resp.read().decode()
    return text


def alive(worker: WorkerProcess) -> bool:
    with urllib.request.urlopen(f"{worker_url(worker.settings)}/healthz", timeout=10) as resp:
        return bool(resp.status == 200)


def stored(reader: WorkerReader) -> dict[str, int]:
    """What the user-visible queries see (FINAL: every table is keyed by what identifies a row)."""
    spans = reader.query_dicts(
        f"SELECT count() AS rows, uniqExact(TraceId, SpanId) AS spans FROM {DEDUPLICATED_SPANS}"
    )[0]
    traces = reader.query_dicts(
        "SELECT count() AS rows, uniqExact(TraceId) AS traces, "
        f"countIf(SpanCount = {SPANS_PER_TRACE}) AS complete FROM tracepipe_traces FINAL"
    )[0]
    windows = reader.query_dicts(
        "SELECT count() AS rows, sum(Count) AS calls, "
        "uniqExact(ServiceName, SpanName, SpanKind, StatusClass, WindowStart) AS windows "
        "FROM tracepipe_latency FINAL"
    )[0]
    return {
        "span_rows": int(spans["rows"]),
        "spans": int(spans["spans"]),
        "trace_rows": int(traces["rows"]),
        "traces": int(traces["traces"]),
        "complete": int(traces["complete"]),
        "window_rows": int(windows["rows"]),
        "windows": int(windows["windows"]),
        "window_calls": int(windows["calls"] or 0),
    }


def raw_span_rows(reader: WorkerReader) -> int:
    """otel_traces rows without FINAL: copies not merged away yet included (no user sees them)."""
    return int(reader.query_dicts(f"SELECT count() AS n FROM {OTEL_TRACES}")[0]["n"])


def produce_during_outage(
    worker: WorkerProcess, producer: SpanProducer, lag: GroupLag, rng: random.Random
) -> OutageReadings:
    """Publish traces at DURING_TRACES_PER_S for FAULT_S s, sampling the worker each second."""
    readings = OutageReadings()
    started = time.monotonic()
    next_sample = started
    while (elapsed := time.monotonic() - started) < FAULT_S:
        due = int(elapsed * DURING_TRACES_PER_S) - readings.traces_produced
        now_ns = time.time_ns()
        spans: list[Span] = [s for _ in range(due) for s in trace_spans(rng, now_ns)]
        producer.send_many(spans)
        readings.traces_produced += due
        if time.monotonic() >= next_sample:
            next_sample += 1.0
            assert alive(worker)
            readings.rss_bytes.append(worker.rss_bytes())
            readings.lag.append(lag.read()[0])
            readings.failures.append(
                counter_total(metrics_page(worker), "tracepipe_sink_insert_failures_total")
            )
        time.sleep(0.05)
    assert producer.flush() == 0
    return readings


def test_insert_outage_pauses_consumption_and_loses_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    fault = tmp_path / "clickhouse-down"
    worker = isolated_worker(
        kafka_bootstrap, tmp_path, TRACEPIPE_CLICKHOUSE_FAULT_FILE=str(fault), **SETTINGS
    )
    ensure_topics(worker.settings.kafka)
    topic = TopicNames.from_prefix(worker.settings.kafka.topic_prefix).spans
    lag = GroupLag(
        kafka_bootstrap, worker.settings.worker.app_id, topic, worker.settings.kafka.partitions
    )
    rng = random.Random(8)
    worker.start()
    try:
        reader = worker.reader()
        with SpanProducer(kafka_bootstrap, topic) as producer:
            now_ns = time.time_ns()
            producer.send_many([s for _ in range(BEFORE_TRACES) for s in trace_spans(rng, now_ns)])
            assert producer.flush() == 0
            before_spans = BEFORE_TRACES * SPANS_PER_TRACE
            worker.wait_for(
                lambda: stored(reader)["spans"] == before_spans, 120, "the first spans stored"
            )
            # Committed too, so the lag read during the outage starts from nothing.
            worker.wait_for(lambda: lag.read()[0] == 0, 60, "the first spans committed")
            rss_before = worker.rss_bytes()
            failures_before = counter_total(
                metrics_page(worker), "tracepipe_sink_insert_failures_total"
            )

            fault.touch()
            outage = produce_during_outage(worker, producer, lag, rng)
            rss_during = worker.rss_bytes()
            fault.unlink()
        recovery_started = time.monotonic()

        traces = BEFORE_TRACES + outage.traces_produced
        spans = traces * SPANS_PER_TRACE
        growth = max([*outage.rss_bytes, rss_during]) - rss_before
        print(
            f"\noutage {FAULT_S:.0f}s, {outage.traces_produced * SPANS_PER_TRACE} spans produced "
            f"during it; lag (messages) {outage.lag}; RSS before {rss_before / MIB:.0f} MiB, "
            f"during max {max(outage.rss_bytes) / MIB:.0f} MiB (+{growth / MIB:.0f}); "
            f"insert failures {outage.failures}"
        )
        # Consumption paused: nothing committed while nothing could be stored, so the lag only
        # grows, and the worker's memory did not follow the producer.
        assert outage.lag == sorted(outage.lag) and outage.lag[-1] > outage.lag[0]
        # More is waiting than the worker may hold (its stream buffer plus a take batch): the
        # rest stays in Kafka as lag, which is what keeps the RSS bound.
        held_at_most = (
            worker.settings.worker.stream_buffer_maxsize + worker.settings.sink.batch_max_messages
        )
        assert outage.lag[-1] > held_at_most
        assert growth < RSS_GROWTH_BOUND
        assert outage.failures[-1] > failures_before

        def settled() -> bool:
            now = stored(reader)
            return (
                now["spans"] == spans
                and now["traces"] == traces
                and now["complete"] == traces
                and now["window_calls"] == spans
            )

        worker.wait_for(settled, 240, f"{spans} spans, {traces} traces and their windows stored")
        print(f"recovered in {time.monotonic() - recovery_started:.1f}s")
        # A few more seconds: a batch stored twice or a window emitted twice would show up now.
        time.sleep(3)
        final = stored(reader)
        assert final == {
            "span_rows": spans,
            "spans": spans,
            "trace_rows": traces,
            "traces": traces,
            "complete": traces,
            "window_rows": final["windows"],
            "windows": final["windows"],
            "window_calls": spans,
        }
        late = counter_total(metrics_page(worker), "tracepipe_latency_late_total")
        assert late == 0
        assert lag.read()[0] == 0
        print(f"otel_traces rows without FINAL after the outage: {raw_span_rows(reader):,}")

        # Lost acks: every insert is stored, then fails, and the writer retries it.
        failures_before = counter_total(
            metrics_page(worker), "tracepipe_sink_insert_failures_total"
        )
        fault.write_text(LOSE_ACK)
        with SpanProducer(kafka_bootstrap, topic) as producer:
            now_ns = time.time_ns()
            producer.send_many(
                [s for _ in range(LOSE_ACK_TRACES) for s in trace_spans(rng, now_ns)]
            )
            assert producer.flush() == 0
        worker.wait_for(
            lambda: (
                counter_total(metrics_page(worker), "tracepipe_sink_insert_failures_total")
                >= failures_before + LOSE_ACK_FAILURES
            ),
            60,
            f"{LOSE_ACK_FAILURES} inserts stored and answered with an error",
        )
        fault.unlink()
        traces += LOSE_ACK_TRACES
        spans = traces * SPANS_PER_TRACE
        worker.wait_for(settled, 240, f"{spans} spans, {traces} traces and their windows stored")
        time.sleep(3)
        final = stored(reader)
        failures = counter_total(metrics_page(worker), "tracepipe_sink_insert_failures_total")
        print(
            f"lost acks: {failures - failures_before} inserts stored then failed; otel_traces "
            f"rows without FINAL {raw_span_rows(reader):,} for {spans:,} spans"
        )
        assert final == {
            "span_rows": spans,
            "spans": spans,
            "trace_rows": traces,
            "traces": traces,
            "complete": traces,
            "window_rows": final["windows"],
            "windows": final["windows"],
            "window_calls": spans,
        }
    finally:
        lag.close()
        worker.stop()
