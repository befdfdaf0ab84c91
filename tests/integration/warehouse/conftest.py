"""A real ClickHouse server for the native backend's tests.

`TRACEPIPE_TEST_CLICKHOUSE_SERVER` (e.g. clickhouse://127.0.0.1:19000/default) names one that
is already running; without it the session starts its own with deploy/local/clickhouse-server.sh
on free loopback ports. A missing server is a failure, never a skip.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from streams.broker.probe import free_port
from streams.warehouse.native_backend import NativeWarehouse

SCRIPT = Path(__file__).resolve().parents[3] / "deploy" / "local" / "clickhouse-server.sh"
SERVER_ENV = "TRACEPIPE_TEST_CLICKHOUSE_SERVER"


@dataclass
class LocalServer:
    """A clickhouse-server this test session controls (config, data and logs under `directory`)."""

    directory: Path
    tcp_port: int
    http_port: int

    @property
    def url(self) -> str:
        return f"clickhouse://127.0.0.1:{self.tcp_port}/default"

    def _run(self, action: str) -> None:
        env = dict(
            os.environ,
            CLICKHOUSE_TCP_PORT=str(self.tcp_port),
            CLICKHOUSE_HTTP_PORT=str(self.http_port),
        )
        done = subprocess.run(
            ["bash", str(SCRIPT), action, str(self.directory)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            pytest.fail(
                f"{SCRIPT.name} {action} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )

    def start(self) -> None:
        self._run("start")

    def stop(self) -> None:
        self._run("stop")


def new_local_server(directory: Path) -> LocalServer:
    return LocalServer(directory, free_port(), free_port())


@pytest.fixture(scope="session")
def clickhouse_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get(SERVER_ENV)
    if given:
        yield given
        return
    server = new_local_server(tmp_path_factory.mktemp("clickhouse-server"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def database_url(clickhouse_server_url: str) -> Iterator[str]:
    """A fresh database on the shared server, dropped afterwards."""
    name = f"tracepipe_test_{uuid.uuid4().hex[:12]}"
    parts = urlsplit(clickhouse_server_url)
    admin = NativeWarehouse(
        parts.hostname or "127.0.0.1",
        parts.port or 9000,
        user=parts.username or "default",
        password=parts.password or "",
        attempts=3,
    )
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.close()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[LocalServer]:
    """A server this test starts and stops itself (not started yet)."""
    server = new_local_server(tmp_path / "own-server")
    try:
        yield server
    finally:
        server.stop()
