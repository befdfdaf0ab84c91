"""Fixtures shared by the integration tests (the broker fixture is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.worker_process import WorkerProcess
from tests.integration.isolated import running_worker


@pytest.fixture
def worker(kafka_bootstrap: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A real worker process of its own on the session's broker, with a chDB in tmp_path."""
    with running_worker(kafka_bootstrap, tmp_path) as proc:
        yield proc
