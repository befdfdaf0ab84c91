"""A worker stopped normally (SIGTERM) while batches are still unstored commits none of them:
after a restart every span is in otel_traces exactly once and every trace in tracepipe_traces.

The fault is real: otel_traces and tracepipe_traces are renamed away in the chDB engine before
the worker starts, so every insert into them fails ("no such table") and the span agent and the
assembly sweep keep retrying what they hold; the tables are renamed back while the worker is
stopped.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.broker.topics import TopicNames, ensure_topics
from streams.query import count_spans
from streams.sdk import SpanProducer
from streams.warehouse.chdb_backend import ChdbWarehouse
from streams.warehouse.migrate import migrate
from streams.worker_process import WorkerProcess
from tests.integration.isolated import isolated_worker
from tests.integration.sink.test_span_sink import make_traces

pytestmark = pytest.mark.integration

PARKED = ("otel_traces", "tracepipe_traces")
TRACES = 600
SPANS_PER_TRACE = 5


def park(chdb_path: Path, parked: bool) -> None:
    """Rename the PARKED tables away (or back) in the worker's chDB path; no worker may hold it."""
    with ChdbWarehouse(chdb_path) as warehouse:
        for table in PARKED:
            old, new = (table, f"{table}_parked") if parked else (f"{table}_parked", table)
            warehouse.execute(f"RENAME TABLE {old} TO {new}")


def failing(worker: WorkerProcess, table: str, times: int) -> Callable[[], bool]:
    """Whether the worker has seen at least `times` inserts into `table` fail so far."""

    def check() -> bool:
        failures = worker.stats()["counters"].get("tracepipe_sink_insert_failures_total", {})
        return int(failures.get(f"table={table}", 0)) >= times

    return check


def test_sigterm_mid_batch_commits_nothing_unstored(kafka_bootstrap: str, tmp_path: Path) -> None:
    worker = isolated_worker(
        kafka_bootstrap,
        tmp_path,
        TRACEPIPE_SINK_RETRY_INITIAL_BACKOFF_MS="100",
        TRACEPIPE_SINK_RETRY_MAX_BACKOFF_MS="200",
        TRACEPIPE_ASSEMBLY_TRACE_IDLE_MS="1000",
        TRACEPIPE_ASSEMBLY_SWEEP_INTERVAL_MS="200",
    )
    ensure_topics(worker.settings.kafka)
    chdb_path = tmp_path / "chdb"
    with ChdbWarehouse(chdb_path) as warehouse:
        migrate(warehouse, worker.settings.clickhouse.ttl_days)
    park(chdb_path, parked=True)

    spans = make_traces(random.Random(11), traces=TRACES, spans_per_trace=SPANS_PER_TRACE)
    topic = TopicNames.from_prefix(worker.settings.kafka.topic_prefix).spans
    worker.start()
    try:
        with SpanProducer(worker.settings.kafka.bootstrap, topic) as producer:
            producer.send_many(spans)
        assert producer.delivered == len(spans) and producer.failed == 0
        # Several failed attempts each: both agents hold a batch they cannot store, mid-retry.
        for table in PARKED:
            worker.wait_for(failing(worker, table, 3), 120, f"inserts into {table} failing")
        consumed = worker.stats()["counters"]["tracepipe_spans_consumed_total"]
        assert sum(consumed.values()) > 0
    finally:
        assert worker.stop(signal.SIGTERM) == 0

    park(chdb_path, parked=False)
    worker.start()
    try:
        reader = worker.reader()
        worker.wait_for(lambda: count_spans(reader) >= len(spans), 120, "every span stored")
        # A redelivered batch stored twice would show up as more rows than distinct spans.
        stored = reader.query_dicts(
            "SELECT count() AS rows, uniqExact(TraceId, SpanId) AS spans FROM otel_traces"
        )[0]

        def traces() -> dict[str, int]:
            return reader.query_dicts(
                "SELECT count() AS traces, countIf(SpanCount = "
                f"{SPANS_PER_TRACE}) AS complete FROM tracepipe_traces FINAL"
            )[0]

        worker.wait_for(lambda: traces()["traces"] >= TRACES, 120, "every trace stored")
        stored_traces = traces()
    finally:
        worker.stop()
    assert stored == {"rows": len(spans), "spans": len(spans)}
    assert stored_traces == {"traces": TRACES, "complete": TRACES}
