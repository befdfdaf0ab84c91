"""SIGTERM and SIGINT stop a worker promptly and lose or repeat nothing (issue 14 item 11).

A worker is stopped mid-stream, with span batches taken, inserts and window holds in flight:
the stop must finish within `worker.session_timeout_ms` plus one insert, and a worker started
again on the same topics, group and store must end with every span once, every trace complete
and every latency window exact (the records not committed at the stop are re-read).
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from streams.broker.topics import ensure_topics
from streams.worker_process import WorkerProcess
from tests.integration.isolated import isolated_worker
from tests.reliability.harness import (
    WORKER_ENV,
    Workload,
    produce,
    stored_span_rows,
    tally,
    wait_settled,
    wait_windows,
    webshop_workload,
)

pytestmark = pytest.mark.integration

TRACES = 2_000
SENDS = 10
SEND_GAP_S = 1.0

INSERT_BOUND_S = 10.0
"""One span insert (sink.batch_max_spans rows into chDB) on a loaded CI machine, generously;
measured at 0.1-2 s."""

SETTLE_TIMEOUT_S = 120.0


def _send_in_steps(worker: WorkerProcess, workload: Workload, done: threading.Event) -> None:
    step = -(-len(workload.spans) // SENDS)
    for start in range(0, len(workload.spans), step):
        produce(worker, workload.spans[start : start + step])
        time.sleep(SEND_GAP_S)
    done.set()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_mid_stream_is_prompt_and_loses_nothing(
    kafka_bootstrap: str, tmp_path: Path, sig: signal.Signals
) -> None:
    env = {**WORKER_ENV, "TRACEPIPE_KAFKA_PARTITIONS": "6"}
    worker = isolated_worker(kafka_bootstrap, tmp_path, **env)
    ensure_topics(worker.settings.kafka)
    worker.start()
    workload = webshop_workload(TRACES, seed=1411)
    sent = threading.Event()
    sender = threading.Thread(target=_send_in_steps, args=(worker, workload, sent))
    sender.start()
    reader = worker.reader()
    # Mid-stream: some spans stored, more on their way, windows open and held.
    worker.wait_for(
        lambda: len(stored_span_rows(reader)) >= len(workload.spans) // 4, 60, "a quarter stored"
    )
    stopping = time.monotonic()
    exit_code = worker.stop(sig, timeout_s=120)
    stop_s = time.monotonic() - stopping
    sender.join()

    restarted = WorkerProcess(worker.env, tmp_path / "worker-restarted.log")
    restarted.start()
    try:
        settled_s = wait_settled(restarted, workload, time.monotonic(), SETTLE_TIMEOUT_S)
        spans, traces = tally(restarted.reader(), workload)
        windows = wait_windows(restarted, workload, SETTLE_TIMEOUT_S)
    finally:
        restarted.stop()
    print(f"{sig.name}: stopped in {stop_s:.1f} s (exit {exit_code}), settled {settled_s} s")
    bound_s = worker.settings.worker.session_timeout_ms / 1000 + INSERT_BOUND_S
    assert stop_s <= bound_s, f"{sig.name} took {stop_s:.1f} s to stop (bound {bound_s:.0f} s)"
    assert exit_code == 0
    assert spans.losses == 0, spans
    assert spans.duplicates == 0, spans
    assert traces.complete == traces.expected, traces
    assert windows.exact == windows.expected, windows
