"""Per-test isolation on the shared broker: own topic prefix, consumer group, chDB path, port."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from streams.broker.topics import ensure_topics
from streams.worker_process import WorkerProcess, isolated_env


def isolated_worker(bootstrap: str, root: Path, **extra_env: str) -> WorkerProcess:
    """A worker (not started) whose topics, group, data and web port are this test's alone.

    `extra_env` overrides any TRACEPIPE_* variable (e.g. TRACEPIPE_KAFKA_PARTITIONS).
    """
    env = {
        "TRACEPIPE_KAFKA_PARTITIONS": "3",
        # Test data may carry old timestamps (golden files from 2023): keep it past the TTL.
        "TRACEPIPE_CLICKHOUSE_TTL_DAYS": "5000",
        "TRACEPIPE_SINK_BATCH_MAX_WAIT_MS": "200",
        **extra_env,
    }
    return WorkerProcess(isolated_env(bootstrap, root, "t", **env), root / "worker.log")


@contextmanager
def running_worker(bootstrap: str, root: Path, **extra_env: str) -> Iterator[WorkerProcess]:
    """An isolated worker with its topics created, started, and stopped on exit."""
    proc = isolated_worker(bootstrap, root, **extra_env)
    ensure_topics(proc.settings.kafka)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
