"""Fixtures shared by the integration tests (the broker fixture is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.worker_process import WorkerProcess, running_workers
from tests.integration.isolated import running_worker


@pytest.fixture
def worker(kafka_bootstrap: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A real worker process of its own on the session's broker, with a chDB in tmp_path."""
    with running_worker(kafka_bootstrap, tmp_path) as proc:
        yield proc


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """A failed integration test reports what each of its running workers was doing (stats,
    task stacks, log tail) before the fixtures stop them: a flaky failure explains itself."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for n, proc in enumerate(running_workers()):
            report.sections.append((f"worker {n} post mortem", proc.post_mortem()))
