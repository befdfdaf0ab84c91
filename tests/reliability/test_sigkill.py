"""Fault: the worker is killed with SIGKILL mid-stream and restarted.

Open traces are rebuilt from their re-read spans messages (held until the traces are emitted and
marked); every span is stored, every trace emitted complete and every service-graph call counted
once, and every error trace once in its error-origin windows; a version is never published with
two different contents. The batches stored
since the last offset commit are stored again after the restart, and the product's queries
still return each span once (otel_traces FINAL).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from streams.broker.topics import ensure_topics
from streams.query import count_spans
from tests.integration.isolated import isolated_worker
from tests.reliability.harness import (
    WORKER_ENV,
    expected_edge_windows,
    expected_origin_windows,
    produce,
    record,
    reliability_scale,
    stored_edge_windows,
    stored_origin_windows,
    tally,
    trace_versions_differing,
    wait_settled,
    wait_windows,
    webshop_workload,
)
from tests.reliability.result import tally_windows

pytestmark = pytest.mark.integration

TRACES = 400
INCIDENTS = ("inventory:errors=10%", "payment/Charge:errors=5%")
"""Errors, so that some traces have origins (the web shop fails about one call in 500)."""


def test_sigkill_mid_stream_and_restart(kafka_bootstrap: str, tmp_path: Path) -> None:
    half = TRACES * reliability_scale() // 2
    worker = isolated_worker(kafka_bootstrap, tmp_path, **WORKER_ENV)
    ensure_topics(worker.settings.kafka)
    worker.start()
    first = webshop_workload(half, seed=8, incidents=INCIDENTS)
    produce(worker, first.spans)
    reader = worker.reader()
    # Kill once the first half is stored: its last traces are still open (trace_idle).
    worker.wait_for(lambda: count_spans(reader) >= len(first.spans), 180, "the first half stored")
    assert worker.stop(signal.SIGKILL) == -signal.SIGKILL

    # Spans made while the worker is down, as services keep making them.
    second = webshop_workload(half, seed=9, incidents=INCIDENTS)
    produce(worker, second.spans)
    workload = first + second
    restarted = time.monotonic()
    worker.start()
    try:
        # Every trace complete: a spans message is acknowledged only once every trace it fed
        # is published and its mark is on the broker (AssemblyState.mark_emitted).
        recovery_s = wait_settled(worker, workload, restarted, 240)
        spans, traces = tally(worker.reader(), workload)
        windows = wait_windows(worker, workload, 45)
        # Every service-graph call counted once: a trace's mark waits for the edge windows of
        # its calls, so traces whose windows were open at the kill are emitted again after the
        # restart and their calls observed again; a window already published drops the copy.
        expected_edges = expected_edge_windows(workload)
        reader = worker.reader()
        worker.wait_for(
            lambda: tally_windows(expected_edges, stored_edge_windows(reader)).exact
            == len(expected_edges),
            90,
            "every service-graph window stored with its exact count",
        )
        # Every error trace counted once where its errors were seen: the same wait of the marks
        # holds the traces for their error-origin windows.
        expected_origins = expected_origin_windows(workload)
        assert expected_origins
        worker.wait_for(
            lambda: stored_origin_windows(reader) == expected_origins,
            90,
            "every error-origin window stored with its exact count",
        )
    finally:
        worker.stop()
    differing = trace_versions_differing(worker, traces.expected)

    result = record(
        "sigkill-restart",
        workload.describe("killed after the first half was stored"),
        spans,
        traces,
        recovery_s,
        windows=windows,
        notes=[
            f"killed after {len(first.spans):,} of {len(workload.spans):,} spans were stored; "
            f"{spans.duplicates:,} spans returned twice by the product's queries",
            f"{len(differing)} trace versions published with two different contents",
            *(
                [f"incomplete traces (latest version short of spans): {traces.incomplete_ids}"]
                if traces.incomplete_ids
                else []
            ),
        ],
    )
    assert differing == []
    assert (spans.losses, spans.unexpected, spans.duplicates) == (0, 0, 0), result
    assert traces.emitted == traces.expected, result
    assert traces.complete == traces.expected, result
