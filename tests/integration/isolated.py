"""Per-test isolation on the shared broker: own topic prefix, consumer group, chDB path, port."""

from __future__ import annotations

import uuid
from pathlib import Path

from streams.worker_process import WorkerProcess, free_port


def isolated_worker(
    bootstrap: str, root: Path, partitions: int = 3, **extra_env: str
) -> WorkerProcess:
    """A worker (not started) whose topics, group, data and web port are this test's alone."""
    run_id = uuid.uuid4().hex[:10]
    env = {
        "TRACEPIPE_KAFKA_BOOTSTRAP": bootstrap,
        "TRACEPIPE_KAFKA_TOPIC_PREFIX": f"t{run_id}.",
        "TRACEPIPE_KAFKA_PARTITIONS": str(partitions),
        "TRACEPIPE_CLICKHOUSE_URL": f"chdb://{root / 'chdb'}",
        "TRACEPIPE_WORKER_APP_ID": f"tracepipe-test-{run_id}",
        "TRACEPIPE_WORKER_WEB_PORT": str(free_port()),
        "TRACEPIPE_WORKER_DATA_DIR": str(root / "worker"),
        "TRACEPIPE_SINK_BATCH_MAX_WAIT_MS": "200",
        **extra_env,
    }
    return WorkerProcess(env, root / "worker.log")
