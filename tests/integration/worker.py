"""Run a real `python -m streams worker` subprocess for integration tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from streams.config import Settings, load_settings
from streams.query import WorkerReader, worker_running, worker_url


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class WorkerProcess:
    """One worker subprocess with its own topics, consumer group and chDB path."""

    bootstrap: str
    root: Path
    partitions: int = 3
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    web_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        """The TRACEPIPE_* variables this worker runs with."""
        return {
            "TRACEPIPE_KAFKA_BOOTSTRAP": self.bootstrap,
            "TRACEPIPE_KAFKA_TOPIC_PREFIX": f"t{self.run_id}.",
            "TRACEPIPE_KAFKA_PARTITIONS": str(self.partitions),
            "TRACEPIPE_CLICKHOUSE_URL": f"chdb://{self.root / 'chdb'}",
            "TRACEPIPE_WORKER_APP_ID": f"tracepipe-test-{self.run_id}",
            "TRACEPIPE_WORKER_WEB_PORT": str(self.web_port),
            "TRACEPIPE_WORKER_DATA_DIR": str(self.root / "worker"),
            "TRACEPIPE_SINK_BATCH_MAX_WAIT_MS": "200",
        }

    @property
    def settings(self) -> Settings:
        """The same settings the worker process loads."""
        return load_settings(env=self.env)

    def start(self, timeout_s: float = 90.0) -> None:
        """Start the worker and wait until its web server answers."""
        log = open(self.root / f"worker-{time.time_ns()}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streams", "worker"],
            env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
        )
        self.wait_for(lambda: worker_running(self.settings), timeout_s, "worker web server")

    def reader(self) -> WorkerReader:
        """Queries through the worker's HTTP API."""
        return WorkerReader(worker_url(self.settings))

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Poll `predicate` until true; fail if the worker dies or time runs out."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited ({self.process.returncode}) waiting for "
                                     f"{what}; logs in {self.root}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; logs in {self.root}")
            time.sleep(0.25)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        """Stop the worker with `sig` and return its exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode
