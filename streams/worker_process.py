"""A `python -m streams worker` child process, for the demo, the tests and the benchmarks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from streams.broker.probe import free_port
from streams.config import Settings, load_settings
from streams.errors import TracepipeError
from streams.query import WorkerReader, worker_running, worker_url

WORKER_COMMAND = ("-m", "streams", "worker")
"""The arguments to the Python interpreter that run the worker."""


class WorkerProcess:
    """One worker child process run with extra TRACEPIPE_* variables, logging to a file.

    `command` (arguments to this Python interpreter) runs another worker that reads the same
    settings and serves /api/stats on worker.web_port, e.g. the benchmark's naive baseline.
    """

    def __init__(
        self, env: Mapping[str, str], log_path: Path, command: Sequence[str] = WORKER_COMMAND
    ) -> None:
        self.env = {**os.environ, **env}
        self.settings: Settings = load_settings(env=self.env)
        self.log_path = log_path
        self.command = [sys.executable, *command]
        self.process: subprocess.Popen[bytes] | None = None
        _RUNNING.add(self)

    @property
    def pid(self) -> int:
        """The child's pid (it must have been started)."""
        assert self.process is not None
        return self.process.pid

    def start(self, timeout_s: float = 90.0) -> None:
        """Start the worker and wait until its web server answers."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait_for(lambda: worker_running(self.settings), timeout_s, "the worker to start")

    def reader(self) -> WorkerReader:
        """Queries through the worker's HTTP API."""
        return WorkerReader(worker_url(self.settings))

    def stats(self) -> dict[str, Any]:
        """The worker's /api/stats: app id, assigned partitions, counters, assembler gauges."""
        url = f"{worker_url(self.settings)}/api/stats"
        with urllib.request.urlopen(url, timeout=10) as response:
            stats: dict[str, Any] = json.loads(response.read())
        return stats

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Poll `predicate` until true; raise if the worker dies or time runs out."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if self.process is not None and self.process.poll() is not None:
                raise TracepipeError(
                    f"the worker exited with code {self.process.returncode} while waiting for "
                    f"{what}; see {self.log_path}"
                )
            if time.monotonic() > deadline:
                raise TracepipeError(
                    f"timed out after {timeout_s:.0f}s waiting for {what}; see {self.log_path}"
                )
            time.sleep(0.25)

    def post_mortem(self, log_lines: int = 200) -> str:
        """For a failed test: the worker's /api/stats and the tail of its log after it logged
        where every task waits (SIGUSR1), so a stall or a missing agent shows in the report."""
        if self.process is None or self.process.poll() is not None:
            code = self.process.returncode if self.process is not None else None
            return f"worker not running (exit code {code}); see {self.log_path}"
        try:
            stats = json.dumps(self.stats(), indent=1, sort_keys=True)
        except Exception as err:  # the report must come out even when the worker is stuck
            stats = f"/api/stats did not answer: {err}"
        self.process.send_signal(signal.SIGUSR1)
        time.sleep(2.0)
        tail = self.log_path.read_text(errors="replace").splitlines()[-log_lines:]
        return f"/api/stats:\n{stats}\n--- {self.log_path} (last {log_lines} lines):\n" + "\n".join(
            tail
        )

    def cpu_seconds(self) -> float:
        """User + system CPU time the worker has used so far (Linux /proc)."""
        return process_cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        """The worker's resident set size now (Linux /proc)."""
        resident_pages = int(Path(f"/proc/{self.pid}/statm").read_text().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        """Stop the worker with `sig` (SIGKILL after the timeout); return its exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


_RUNNING: weakref.WeakSet[WorkerProcess] = weakref.WeakSet()


def running_workers() -> list[WorkerProcess]:
    """Every WorkerProcess of this interpreter whose child is still running."""
    return [w for w in list(_RUNNING) if w.process is not None and w.process.poll() is None]


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time process `pid` (all its threads) has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def isolated_env(bootstrap: str, root: Path, name: str, **extra: str) -> dict[str, str]:
    """TRACEPIPE_* variables for a worker whose topics, consumer group, chDB path and web port
    are its own (tests, benchmarks); `extra` overrides any of them."""
    run_id = f"{name}{uuid.uuid4().hex[:10]}"
    return {
        "TRACEPIPE_KAFKA_BOOTSTRAP": bootstrap,
        "TRACEPIPE_KAFKA_TOPIC_PREFIX": f"{run_id}.",
        "TRACEPIPE_CLICKHOUSE_URL": f"chdb://{root / 'chdb'}",
        "TRACEPIPE_WORKER_APP_ID": f"tracepipe-{run_id}",
        "TRACEPIPE_WORKER_WEB_PORT": str(free_port()),
        "TRACEPIPE_WORKER_DATA_DIR": str(root / "worker"),
        **extra,
    }
