"""A second worker started on a running worker's chDB data path, or on its web port, exits at
once with one line saying what is in the way and what to do, before it joins the consumer
group: the first worker keeps its partitions."""

from __future__ import annotations

import functools
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient

from streams.broker.probe import free_port
from streams.broker.topics import admin_client
from streams.config import KafkaConfig
from streams.worker_process import WORKER_COMMAND, WorkerProcess
from tests.integration.isolated import running_worker

# Generous for a loaded machine: the refusal comes before any broker round trip but the
# interpreter still has to import the worker.
EXIT_BOUND_S = 60.0


@functools.cache
def _admin(bootstrap: str) -> AdminClient:
    return admin_client(KafkaConfig(bootstrap=bootstrap))


def group_members(worker: WorkerProcess) -> int:
    """How many consumers are members of the worker's consumer group now."""
    admin = _admin(worker.settings.kafka.bootstrap)
    (future,) = admin.describe_consumer_groups([worker.settings.worker.app_id]).values()
    return len(future.result(timeout=10).members)


def assigned(worker: WorkerProcess) -> list[str]:
    """The partitions the worker says it owns (/api/stats)."""
    partitions: list[str] = worker.stats()["assigned"]
    return partitions


def start_second(first: WorkerProcess, **env: str) -> tuple[int, str, int]:
    """Run a worker with the first one's settings but `env`, until it exits; its exit code,
    its output, and the most members the group had meanwhile. Stops early on a join."""
    second = subprocess.Popen(
        [sys.executable, *WORKER_COMMAND],
        env={**first.env, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + EXIT_BOUND_S
    most = 0
    try:
        while second.poll() is None and time.monotonic() < deadline and most < 2:
            most = max(most, group_members(first))
            time.sleep(0.2)
    finally:
        if second.poll() is None:
            second.kill()
        output = second.communicate()[0].decode()
    most = max(most, group_members(first))
    return second.returncode, output, most


def wait_until_owning(worker: WorkerProcess) -> list[str]:
    """The first worker's partitions once it has some and is the group's one member."""
    worker.wait_for(lambda: bool(assigned(worker)), 90, "the first worker's partitions")
    worker.wait_for(lambda: group_members(worker) == 1, 30, "a group of one")
    return assigned(worker)


def test_a_second_worker_on_the_same_data_path_is_refused(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    with running_worker(kafka_bootstrap, tmp_path) as first:
        before = wait_until_owning(first)
        code, output, most = start_second(
            first,
            TRACEPIPE_WORKER_WEB_PORT=str(free_port()),
            TRACEPIPE_WORKER_DATA_DIR=str(tmp_path / "second-worker"),
        )
        lines = output.strip().splitlines()
        assert code != 0, output
        assert "Traceback" not in output
        assert len(lines) == 1, output
        (line,) = lines
        assert line.startswith(
            f"tracepipe: error: chDB data path {(tmp_path / 'chdb').resolve()} is owned by "
            f"pid {first.pid} (python -m streams worker, since "
        ), line
        assert "TRACEPIPE_CLICKHOUSE_URL" in line
        assert most == 1, "the second worker joined the consumer group"
        assert assigned(first) == before


def test_a_second_worker_on_the_same_web_port_is_refused(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    with running_worker(kafka_bootstrap, tmp_path) as first:
        before = wait_until_owning(first)
        port = first.settings.worker.web_port
        code, output, most = start_second(
            first,
            TRACEPIPE_CLICKHOUSE_URL=f"chdb://{tmp_path / 'second-chdb'}",
            TRACEPIPE_WORKER_DATA_DIR=str(tmp_path / "second-worker"),
        )
        assert code != 0, output
        assert "Traceback" not in output
        assert len(output.strip().splitlines()) == 1, output
        assert output.startswith(f"tracepipe: error: port {port} ")
        assert "worker.web_port (TRACEPIPE_WORKER_WEB_PORT)" in output
        assert most == 1, "the second worker joined the consumer group"
        assert assigned(first) == before
