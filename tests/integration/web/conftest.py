"""Fixtures the web view's browser tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.worker_process import WorkerProcess
from tests.integration.isolated import running_worker


@pytest.fixture
def quick_worker(kafka_bootstrap: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A worker that assembles a trace 1 s after its last span."""
    with running_worker(
        kafka_bootstrap,
        tmp_path,
        TRACEPIPE_ASSEMBLY_TRACE_IDLE_MS="1000",
        TRACEPIPE_ASSEMBLY_SWEEP_INTERVAL_MS="200",
    ) as proc:
        yield proc
