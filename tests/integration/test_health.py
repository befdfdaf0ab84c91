"""A real worker's probe endpoints: alive and ready on the real broker and chDB; not ready, and
saying why, while its ClickHouse is unreachable; the deploy files probe paths it serves."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from streams.broker.probe import free_port
from streams.query import worker_url
from streams.worker.health import LIVENESS_PATH, OK, READINESS_PATH
from streams.worker_process import WorkerProcess
from tests.integration.isolated import running_worker
from tests.unit.deploy.stack import probe_paths


def get(url: str) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of a GET, 5xx included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_a_running_worker_is_alive_and_ready(worker: WorkerProcess) -> None:
    base = worker_url(worker.settings)
    assert get(base + LIVENESS_PATH) == (200, {"alive": True})
    # The first check opens chDB and applies the migrations: it may take a probe or two.
    worker.wait_for(lambda: get(base + READINESS_PATH)[0] == 200, 60, "the worker to be ready")
    status, body = get(base + READINESS_PATH)
    assert status == 200
    assert body["ready"] is True
    assert body["checks"] == {"consumer group": OK, "warehouse": OK}
    assert body["assigned_partitions"] > 0
    # Every path the compose file and the Kubernetes manifests probe is one the worker serves.
    paths = probe_paths()
    assert paths == {LIVENESS_PATH, READINESS_PATH}
    for path in paths:
        assert get(base + path)[0] == 200, path


def test_readiness_names_an_unreachable_warehouse(kafka_bootstrap: str, tmp_path: Path) -> None:
    nobody = f"clickhouse://default@127.0.0.1:{free_port()}/tracing"
    with running_worker(
        kafka_bootstrap,
        tmp_path,
        TRACEPIPE_CLICKHOUSE_URL=nobody,
        TRACEPIPE_CLICKHOUSE_CONNECT_TIMEOUT_S="1",
    ) as proc:
        base = worker_url(proc.settings)
        assert get(base + LIVENESS_PATH) == (200, {"alive": True})

        def joined() -> bool:
            checks: dict[str, str] = get(base + READINESS_PATH)[1]["checks"]
            return checks["consumer group"] == OK

        proc.wait_for(joined, 60, "the worker to join its consumer group")
        status, body = get(base + READINESS_PATH)
        assert status == 503
        assert body["ready"] is False
        assert body["checks"]["warehouse"].startswith("ClickHouse ")
        assert "TRACEPIPE_CLICKHOUSE_URL" in body["checks"]["warehouse"]

        # The backend retries the refused connection past the probe's 3 s; a later probe
        # names the error, and the worker's log says why it is not ready.
        def refused() -> bool:
            return "Connection refused" in get(base + READINESS_PATH)[1]["checks"]["warehouse"]

        proc.wait_for(refused, 60, "readiness to name the refused connection")
        log = proc.log_path.read_text()
        assert "not ready: warehouse: ClickHouse" in log
        # Still alive: a restart would not bring ClickHouse back.
        assert get(base + LIVENESS_PATH)[0] == 200


def test_the_worker_reports_how_late_its_event_loop_runs(worker: WorkerProcess) -> None:
    # The loop-lag task runs from the worker's start: its ticks show in /api/stats.
    worker.wait_for(
        lambda: worker.stats().get("event_loop", {}).get("ticks", 0) >= 3,
        30,
        "the event-loop monitor to tick",
    )
    event_loop = worker.stats()["event_loop"]
    assert event_loop["tick_ms"] == 100.0
    assert event_loop["longest_ms"] >= event_loop["latest_ms"] >= 0.0
    assert all(len(stall) == 2 for stall in event_loop["stalls"])
