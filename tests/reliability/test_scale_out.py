"""Fault: workers join and leave the consumer group mid-stream (scale-out, then scale-in).

Three workers share one group on a spans topic of six partitions: one runs alone, two more join
while spans flow (partitions move away from the first, with their open traces and partial
windows), then they leave one after the other (SIGTERM: the partitions move back). The three
stores are read as one (tests/reliability/stores.py, what a shared ClickHouse server would hold)
and compared with the workload exactly: every span once (as users query it), every trace
complete, every latency window's count, no span late — the same expectation every
single-worker fault in this suite meets, i.e. three workers produce what one worker does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.broker.lag import GroupLag
from streams.broker.probe import free_port
from streams.broker.topics import TopicNames, ensure_topics
from streams.query import count_spans
from streams.worker_process import WorkerProcess, isolated_env
from tests.integration.isolated import ISOLATED_DEFAULTS, isolated_worker
from tests.reliability.harness import (
    WORKER_ENV,
    Workload,
    produce,
    record,
    reliability_scale,
    tally,
    trace_versions_differing,
    wait_windows,
    webshop_workload,
)
from tests.reliability.stores import combine_stores

pytestmark = pytest.mark.integration

PARTITIONS = 6
TRACES_PER_STEP = 150


def members(bootstrap: str, root: Path, count: int) -> list[WorkerProcess]:
    """`count` workers of one consumer group (same topics and app id), each with its own
    store, data directory and web port."""
    shared = isolated_env(
        bootstrap,
        root,
        "s",
        **{**ISOLATED_DEFAULTS, **WORKER_ENV, "TRACEPIPE_KAFKA_PARTITIONS": str(PARTITIONS)},
    )
    workers = []
    for i in range(count):
        env = {
            **shared,
            "TRACEPIPE_CLICKHOUSE_URL": f"chdb://{root / f'member{i}' / 'chdb'}",
            "TRACEPIPE_WORKER_WEB_PORT": str(free_port()),
            "TRACEPIPE_WORKER_DATA_DIR": str(root / f"member{i}" / "worker"),
        }
        workers.append(WorkerProcess(env, root / f"member{i}" / "worker.log"))
    return workers


def spans_partitions(worker: WorkerProcess) -> set[int]:
    """The tracepipe.spans partitions the worker owns now."""
    topic = TopicNames.from_prefix(worker.settings.kafka.topic_prefix).spans
    assigned = worker.stats()["assigned"]
    return {int(tp.rsplit(":", 1)[1]) for tp in assigned if tp.rsplit(":", 1)[0] == topic}


def _owns_spans(worker: WorkerProcess) -> Callable[[], bool]:
    return lambda: bool(spans_partitions(worker))


def settled(worker: WorkerProcess) -> bool:
    """True once the worker (the group's last member) holds nothing back: every span and
    window record committed, no open trace, no open or pending window, nothing held.
    (tracepipe.traces is output only: the worker does not read it.)"""
    topics = TopicNames.from_prefix(worker.settings.kafka.topic_prefix)
    for topic in (topics.spans, topics.latency, topics.edges):
        lag = GroupLag(
            worker.settings.kafka.bootstrap, worker.settings.worker.app_id, topic, PARTITIONS
        )
        try:
            if lag.read()[0]:
                return False
        finally:
            lag.close()
    stats = worker.stats()
    held = [count for gauges in stats["aggregation"].values() for count in gauges.values()]
    assembly = stats["assembly"]
    return assembly["open_traces"] == 0 and assembly["held_span_messages"] == 0 and not any(held)


def late_spans(worker: WorkerProcess) -> int:
    """Spans the worker counted late for their latency windows."""
    counters = worker.stats()["counters"]
    return int(sum(counters.get("tracepipe_latency_late_total", {}).values()))


def test_workers_join_and_leave_mid_stream(kafka_bootstrap: str, tmp_path: Path) -> None:
    step = TRACES_PER_STEP * reliability_scale()
    first, second, third = members(kafka_bootstrap, tmp_path, 3)
    ensure_topics(first.settings.kafka)
    workload = Workload([], {})
    late = 0
    moved: dict[str, set[int]] = {}

    def send(seed: int) -> None:
        nonlocal workload
        chunk = webshop_workload(step, seed=seed)
        produce(first, chunk.spans)
        workload = workload + chunk

    first.start()
    try:
        send(1)
        first.wait_for(
            lambda: count_spans(first.reader()) >= len(workload.spans) // 2, 120, "spans stored"
        )
        # Scale out: two workers join while spans flow (open traces and windows move).
        second.start()
        send(2)
        third.start()
        send(3)
        for worker, name in ((second, "second"), (third, "third")):
            worker.wait_for(_owns_spans(worker), 120, f"the {name} worker's partitions")
            moved[name] = spans_partitions(worker)
        send(4)
        time.sleep(3)
        # Scale in: they leave again, one at a time, mid-stream.
        late += late_spans(third)
        third.stop()
        send(5)
        time.sleep(3)
        late += late_spans(second)
        second.stop()
        send(6)
        first.wait_for(lambda: settled(first), 240, "every record committed, nothing held")
        late += late_spans(first)
    finally:
        for worker in (third, second, first):
            worker.stop()

    combined = tmp_path / "combined"
    combine_stores(
        [tmp_path / f"member{i}" / "chdb" for i in range(3)], combined / "chdb", tmp_path / "rows"
    )
    viewer = isolated_worker(kafka_bootstrap, combined, TRACEPIPE_KAFKA_PARTITIONS="1")
    ensure_topics(viewer.settings.kafka)
    viewer.start()
    try:
        spans, traces = tally(viewer.reader(), workload)
        windows = wait_windows(viewer, workload, 0)
        differing = trace_versions_differing(viewer, traces.expected)
    finally:
        viewer.stop()

    result = record(
        "scale-out-in",
        workload.describe(f"3 workers, {PARTITIONS} partitions: 2 join and leave mid-stream"),
        spans,
        traces,
        None,
        windows=windows,
        notes=[
            f"spans partitions taken over by joining workers: {moved}",
            f"{late} spans late for their windows",
            f"{spans.duplicates:,} spans returned twice by the product's queries; "
            f"{spans.raw_copies or 0:,} stored copies not merged yet (re-read after rebalances)",
            f"{len(differing)} trace versions published with two different contents",
        ],
    )
    assert all(moved.values()), result
    assert (spans.losses, spans.unexpected, spans.duplicates) == (0, 0, 0), result
    assert traces.emitted == traces.expected == traces.complete, result
    assert differing == [], result
    assert late == 0, result
    assert windows.exact == windows.expected, result
