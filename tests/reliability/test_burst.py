"""A fresh worker fed one burst, then silence (issue 14 item 9): every window comes out.

The shape of the report: a worker started on fresh topics, one burst of ~20,000 spans 25 s
after its start (the partitions have seen nothing yet, their idle clocks are running), then
nothing more. Every span must be stored, every trace emitted complete, every latency and
service-graph window published exactly (counted against the pipeline's own observation and
pairing rules), and SIGINT must stop the worker promptly. One run per
`$TRACEPIPE_BURST_RUNS` (default 1; the issue saw 1 failure in 3 runs), each on its own
topics, consumer group and chDB.

The burst goes through `SpanProducer`, as `tracepipe produce FILE` sends a file's spans.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from streams.broker.topics import ensure_topics
from streams.errors import TracepipeError
from streams.worker_process import WorkerProcess
from tests.integration.isolated import isolated_worker
from tests.reliability.harness import (
    WORKER_ENV,
    expected_edge_windows,
    expected_windows,
    produce,
    stored_edge_windows,
    stored_windows,
    tally,
    wait_settled,
    webshop_workload,
)
from tests.reliability.result import (
    EdgeWindowKey,
    SpanTally,
    TraceTally,
    WindowKey,
    WindowTally,
    tally_windows,
)

pytestmark = pytest.mark.integration

RUNS_ENV = "TRACEPIPE_BURST_RUNS"

BURST_TRACES = 2_430
"""Web-shop traces of the burst: ~20,000 spans."""

BURST_AFTER_S = 25.0
"""When the burst is sent, counted from the worker's start (as reported)."""

BURST_ENV = {
    **WORKER_ENV,
    # The default partition count, and the default idle rule: 30 s, so the partitions are
    # still waiting out their idle clocks when the burst arrives 25 s in.
    "TRACEPIPE_KAFKA_PARTITIONS": "6",
    "TRACEPIPE_AGGREGATION_PARTITION_IDLE_MS": "30000",
}

SETTLE_TIMEOUT_S = 120.0
"""Every span stored and trace emitted, counted from the burst (7-23 s measured)."""

WINDOWS_TIMEOUT_S = 120.0
"""Every window, counted from the spans settling (25-27 s measured: the 30 s idle rule ends
them); the issue's stalled run published none in 6 minutes."""

STOP_TIMEOUT_S = 30.0
"""SIGINT to exit: 2-5 s in healthy runs; the issue's stalled run did not stop in 120 s."""


def burst_runs() -> int:
    """How many fresh-worker bursts to run: `$TRACEPIPE_BURST_RUNS` (default 1)."""
    raw = os.environ.get(RUNS_ENV, "1").strip() or "1"
    if not raw.isdigit() or int(raw) < 1:
        raise TracepipeError(f"{RUNS_ENV}={raw!r} is not a whole number >= 1; unset it for 1")
    return int(raw)


@dataclass(frozen=True)
class BurstOutcome:
    """What one burst run left in the worker's store, and how it stopped."""

    spans: SpanTally
    traces: TraceTally
    latency: WindowTally
    edges: WindowTally
    settled_s: float | None
    windows_s: float | None
    stop_s: float
    exit_code: int


def _wait_all_windows(
    worker: WorkerProcess,
    expected_latency: dict[WindowKey, int],
    expected_edges: dict[EdgeWindowKey, int],
    timeout_s: float,
) -> tuple[WindowTally, WindowTally, float | None]:
    """Both signals' windows once every expected one is stored exactly (or the time is up),
    and how long that took (None: never)."""
    reader = worker.reader()
    started = time.monotonic()
    while True:
        latency = tally_windows(expected_latency, stored_windows(reader))
        edges = tally_windows(expected_edges, stored_edge_windows(reader))
        done = latency.exact == latency.expected and edges.exact == edges.expected
        if done or time.monotonic() - started > timeout_s:
            return latency, edges, (time.monotonic() - started if done else None)
        time.sleep(1)


def run_burst(bootstrap: str, root: Path, seed: int, stall_s: float = 0.0) -> BurstOutcome:
    """One fresh worker, one burst `BURST_AFTER_S` after its start, silence; `stall_s` > 0
    freezes the worker (SIGSTOP) that long as soon as the burst is sent, as a loaded machine
    can."""
    worker = isolated_worker(bootstrap, root, **BURST_ENV)
    ensure_topics(worker.settings.kafka)
    started = time.monotonic()
    worker.start()
    try:
        time.sleep(max(0.0, started + BURST_AFTER_S - time.monotonic()))
        workload = webshop_workload(BURST_TRACES, seed)
        produce(worker, workload.spans)
        sent = time.monotonic()
        if stall_s > 0:
            worker.process.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
            time.sleep(stall_s)
            worker.process.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
        settled_s = wait_settled(worker, workload, sent, SETTLE_TIMEOUT_S)
        latency, edges, windows_s = _wait_all_windows(
            worker, expected_windows(workload), expected_edge_windows(workload), WINDOWS_TIMEOUT_S
        )
        spans, traces = tally(worker.reader(), workload)
    finally:
        stopping = time.monotonic()
        exit_code = worker.stop(signal.SIGINT, timeout_s=STOP_TIMEOUT_S + 30)
        stop_s = time.monotonic() - stopping
    return BurstOutcome(spans, traces, latency, edges, settled_s, windows_s, stop_s, exit_code)


def assert_complete(outcome: BurstOutcome) -> None:
    """Every span once, every trace complete, every window exact, a prompt clean stop."""
    assert outcome.spans.losses == 0, outcome
    assert outcome.spans.duplicates == 0, outcome
    assert outcome.traces.complete == outcome.traces.expected, outcome
    assert outcome.latency.exact == outcome.latency.expected, outcome
    assert outcome.edges.exact == outcome.edges.expected, outcome
    assert outcome.stop_s < STOP_TIMEOUT_S, outcome
    assert outcome.exit_code == 0, outcome


@pytest.mark.parametrize("run", range(burst_runs()), ids=lambda run: f"run{run + 1}")
def test_one_burst_then_silence_publishes_every_window(
    kafka_bootstrap: str, tmp_path: Path, run: int
) -> None:
    outcome = run_burst(kafka_bootstrap, tmp_path, seed=1400 + run)
    print(f"burst run {run + 1}: {outcome}")
    assert_complete(outcome)


def test_burst_survives_a_stall_past_the_session_timeout(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # Frozen as the burst lands for longer than worker.session_timeout_ms: the broker evicts
    # it and it rejoins (a rebalance) before it has committed anything, as a worker starved
    # on a loaded machine does. Today's code (472ffaa) lost most of the burst's spans and
    # every window this way in 3 of 3 runs on a loaded machine (load average 9-15); it passed
    # 1 of 1 at load 2. The early-rebalance gap (docs/ARCHITECTURE.md, Latency windows).
    session_s = int(BURST_ENV.get("TRACEPIPE_WORKER_SESSION_TIMEOUT_MS", "10000")) / 1000
    outcome = run_burst(kafka_bootstrap, tmp_path, seed=1499, stall_s=session_s + 3)
    print(f"burst with a stall: {outcome}")
    assert_complete(outcome)
