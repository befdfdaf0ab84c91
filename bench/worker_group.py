"""The workers of one drain and what the harness reads from them: their settings (one consumer
group, a store each), /healthz and /readyz probed on a period (`Probe`), every worker's
/api/stats and CPU and the broker's CPU at each reading (`Group`), and what their stores hold
once drained (`store_figures`).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.drain_figures import (
    Reading,
    merged_counters,
)
from bench.steps import SPANS_STORED, counter_value
from streams.broker.probe import free_port
from streams.errors import TracepipeError
from streams.query import worker_url
from streams.worker_process import WorkerProcess, isolated_env, process_cpu_seconds

PROBE_TIMEOUT_S = 60.0
"""A probe that takes longer counts as this long (and as failed)."""


@dataclass
class Probe:
    """Response times of one endpoint of one worker, probed every period until stopped."""

    url: str
    period_s: float
    times: list[tuple[float, float, int]] = field(default_factory=list)
    """(monotonic start, seconds, HTTP status or 0 on failure)."""

    def run(self, stop: threading.Event) -> None:
        """Probe until `stop` is set."""
        while not stop.is_set():
            started = time.monotonic()
            status = 0
            try:
                with urllib.request.urlopen(self.url, timeout=PROBE_TIMEOUT_S) as response:
                    response.read()
                    status = response.status
            except urllib.error.HTTPError as err:  # /readyz answers 503 while rebalancing
                status = err.code
            except OSError:
                status = 0
            self.times.append((started, time.monotonic() - started, status))
            stop.wait(max(0.0, self.period_s - (time.monotonic() - started)))

    def slowest_s(self, since_s: float, until_s: float) -> float:
        """The slowest answer among the requests started within [since, until]."""
        return max((s for at, s, _ in self.times if since_s <= at <= until_s), default=0.0)

    def failures(self, since_s: float, until_s: float) -> int:
        """Requests that got no answer (timeout, refused) within [since, until]."""
        return sum(1 for at, _, status in self.times if since_s <= at <= until_s and not status)


@dataclass
class Group:
    """The workers of one run and what the harness read from them."""

    workers: list[WorkerProcess]
    broker_pid: int | None
    readings: list[Reading] = field(default_factory=list)
    stalls: dict[tuple[int, float], float] = field(default_factory=dict)
    stats_times: list[tuple[float, float]] = field(default_factory=list)
    """(monotonic start, seconds) of every /api/stats request."""

    def stats(self, index: int) -> dict[str, Any] | None:
        """Worker `index`'s /api/stats, None if it did not answer within PROBE_TIMEOUT_S (a
        stalled worker is what the benchmark measures, not a reason to stop)."""
        worker = self.workers[index]
        started = time.monotonic()
        stats: dict[str, Any] | None
        try:
            url = worker_url(worker.settings) + "/api/stats"
            with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:
                stats = json.loads(response.read())
        except OSError:
            if worker.process is not None and worker.process.poll() is not None:
                raise TracepipeError(
                    f"worker {index} exited with code {worker.process.returncode}; see "
                    f"{worker.log_path}"
                ) from None
            stats = None
        self.stats_times.append((started, time.monotonic() - started))
        return stats

    def read(self) -> Reading | None:
        """Read every worker's /api/stats and CPU, and the broker's CPU, now; None when a
        worker did not answer."""
        snapshots = []
        open_traces = 0
        for index in range(len(self.workers)):
            stats = self.stats(index)
            if stats is None:
                return None
            snapshots.append(stats["counters"])
            open_traces += int(stats.get("assembly", {}).get("open_traces", 0))
            for at, ms in stats.get("event_loop", {}).get("stalls", []):
                self.stalls[(index, float(at))] = float(ms)
        counters = merged_counters(snapshots)
        reading = Reading(
            at_s=time.monotonic(),
            at_unix_s=time.time(),
            stored_spans=counter_value(counters, *SPANS_STORED),
            worker_cpu_s=sum(w.cpu_seconds() for w in self.workers),
            broker_cpu_s=process_cpu_seconds(self.broker_pid) if self.broker_pid else None,
            counters=counters,
            open_traces=open_traces,
        )
        self.readings.append(reading)
        return reading


def group_envs(bootstrap: str, root: Path, workers: int, **extra: str) -> list[dict[str, str]]:
    """Settings for `workers` workers of one group: shared topics and app id, each its own chDB
    path (a store has one owner), data dir and web port."""
    first = isolated_env(bootstrap, root / "worker-0", "drain", **extra)
    envs = [first]
    for index in range(1, workers):
        member = root / f"worker-{index}"
        envs.append(
            {
                **first,
                "TRACEPIPE_CLICKHOUSE_URL": f"chdb://{member / 'chdb'}",
                "TRACEPIPE_WORKER_WEB_PORT": str(free_port()),
                "TRACEPIPE_WORKER_DATA_DIR": str(member / "worker"),
            }
        )
    return envs


def store_figures(workers: Sequence[WorkerProcess]) -> dict[str, Any]:
    """What the stores hold once drained: spans once each (across stores), traces, versions."""
    span_ids: set[str] = set()
    rows = traces = versions = 0
    for worker in workers:
        reader = worker.reader()
        counts = reader.query_dicts("SELECT count() AS rows FROM otel_traces")[0]
        rows += int(counts["rows"])
        span_ids.update(
            str(r["SpanId"]) for r in reader.query_dicts("SELECT DISTINCT SpanId FROM otel_traces")
        )
        pairs = reader.query_dicts(
            "SELECT uniqExact(TraceId) AS traces, uniqExact(TraceId, Version) AS versions "
            "FROM tracepipe_traces"
        )[0]
        traces += int(pairs["traces"])
        versions += int(pairs["versions"])
    return {
        "distinct_spans": len(span_ids),
        "span_rows": rows,
        "stored_traces": traces,
        "stored_trace_versions": versions,
    }
