"""A worker stopped normally (SIGTERM) while a batch is still unstored commits none of it: after
a restart every span is in otel_traces exactly once.

The fault is real: otel_traces is renamed away in the chDB engine before the worker starts, so
every insert fails ("table does not exist") and the writer keeps retrying the batch it holds;
the table is renamed back while the worker is stopped.
"""

from __future__ import annotations

import random
import signal
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

PARKED = "otel_traces_parked"


def rename(chdb_path: Path, old: str, new: str) -> None:
    """Rename a table in the worker's chDB path (only while no worker holds it)."""
    with ChdbWarehouse(chdb_path) as warehouse:
        warehouse.execute(f"RENAME TABLE {old} TO {new}")


def insert_failures(worker: WorkerProcess) -> int:
    """How many inserts into otel_traces the worker has seen fail so far."""
    failures = worker.stats()["counters"].get("tracepipe_sink_insert_failures_total", {})
    return int(failures.get("table=otel_traces", 0))


def test_sigterm_mid_batch_commits_nothing_unstored(kafka_bootstrap: str, tmp_path: Path) -> None:
    worker = isolated_worker(
        kafka_bootstrap,
        tmp_path,
        TRACEPIPE_SINK_RETRY_INITIAL_BACKOFF_MS="100",
        TRACEPIPE_SINK_RETRY_MAX_BACKOFF_MS="200",
    )
    ensure_topics(worker.settings.kafka)
    chdb_path = tmp_path / "chdb"
    with ChdbWarehouse(chdb_path) as warehouse:
        migrate(warehouse, worker.settings.clickhouse.ttl_days)
    rename(chdb_path, "otel_traces", PARKED)

    spans = make_traces(random.Random(11), traces=600, spans_per_trace=5)
    topic = TopicNames.from_prefix(worker.settings.kafka.topic_prefix).spans
    worker.start()
    try:
        with SpanProducer(worker.settings.kafka.bootstrap, topic) as producer:
            producer.send_many(spans)
        assert producer.delivered == len(spans) and producer.failed == 0
        # Several failed attempts: the span agent holds a batch it cannot store, mid-retry.
        worker.wait_for(lambda: insert_failures(worker) >= 3, 120, "inserts failing")
        consumed = worker.stats()["counters"]["tracepipe_spans_consumed_total"]
        assert sum(consumed.values()) > 0
    finally:
        assert worker.stop(signal.SIGTERM) == 0

    rename(chdb_path, PARKED, "otel_traces")
    worker.start()
    try:
        reader = worker.reader()
        worker.wait_for(lambda: count_spans(reader) >= len(spans), 120, "every span stored")
        # A redelivered batch stored twice would show up as more rows than distinct spans.
        stored = reader.query_dicts(
            "SELECT count() AS rows, uniqExact(TraceId, SpanId) AS spans FROM otel_traces"
        )[0]
    finally:
        worker.stop()
    assert stored == {"rows": len(spans), "spans": len(spans)}
