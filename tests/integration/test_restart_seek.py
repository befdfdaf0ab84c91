"""A worker restarted onto a backlog commits every spans partition to its end, even when Faust's
seek to the committed offsets after table recovery is slow (issue 8: records fetched during
that seek were cleared unprocessed and the partition's commit froze at the hole)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from streams.broker.lag import GroupLag
from streams.broker.topics import TopicNames, ensure_topics
from streams.errors import TracepipeError
from streams.query import count_spans
from tests.integration.isolated import isolated_worker
from tests.integration.slow_seek_worker import SEEK_DELAY_ENV, SLOW_SEEK_COMMAND
from tests.reliability.harness import WORKER_ENV, produce, wait_settled, webshop_workload

pytestmark = pytest.mark.integration

TRACES = 150


def test_a_restart_onto_a_backlog_commits_every_partition(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    worker = isolated_worker(
        kafka_bootstrap,
        tmp_path,
        SLOW_SEEK_COMMAND,
        **WORKER_ENV,
        TRACEPIPE_SINK_BATCH_MAX_MESSAGES="20",
        **{SEEK_DELAY_ENV: "1000"},
    )
    kafka = worker.settings.kafka
    ensure_topics(kafka)
    worker.start()
    # One span per message: a backlog of many small messages fills the agents' buffers.
    first = webshop_workload(TRACES, seed=31)
    produce(worker, first.spans, batch_max_spans=1)
    reader = worker.reader()
    worker.wait_for(lambda: count_spans(reader) >= len(first.spans), 120, "the first spans")
    worker.stop()

    # The restart recovers the assembly table, then seeks onto this backlog.
    second = webshop_workload(TRACES, seed=32)
    produce(worker, second.spans, batch_max_spans=1)
    workload = first + second
    lag = GroupLag(
        kafka.bootstrap,
        worker.settings.worker.app_id,
        TopicNames.from_prefix(kafka.topic_prefix).spans,
        kafka.partitions,
    )
    worker.start()
    try:
        settled = wait_settled(worker, workload, time.monotonic(), 120)
        # On the old code the frozen partitions' commit never moved again.
        try:
            worker.wait_for(lambda: lag.read()[0] == 0, 60, "every spans partition committed")
        except TracepipeError as err:
            stats = worker.stats()
            raise AssertionError(
                f"{err}\n(committed, end) by partition: {lag.by_partition()}\n"
                f"aggregation: {stats['aggregation']}\nassembly: {stats['assembly']}\n"
                f"windows at {time.time_ns()}: {stats['windows']}\n"
                f"counters: {stats['counters']}\nfetching: {stats['fetching']}"
            ) from err
    finally:
        lag.close()
        worker.stop()
    assert settled is not None
