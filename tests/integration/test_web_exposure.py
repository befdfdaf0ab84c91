"""What a real worker exposes: its listening sockets (only worker.web_host, loopback by
default), and `/api/query` and `tracepipe query sql` (with and without a worker) refusing the
issue's probes — a host file read through file(), a file written INTO OUTFILE — with the same
one-line error either way."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.broker.probe import free_port
from streams.query import worker_url
from streams.worker_process import WorkerProcess
from tests.integration.isolated import running_worker

pytestmark = pytest.mark.integration


def _address(hex_address: str) -> str:
    """An address of /proc/net/tcp{,6} (32-bit words in host order, here little-endian)."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def listening_sockets(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket process `pid` listens on."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed since the listing
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A: LISTEN
                host, port = local.split(":")
                found.add((_address(host), int(port, 16)))
    return found


@pytest.fixture(scope="module")
def worker(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    with running_worker(kafka_bootstrap, tmp_path_factory.mktemp("exposure")) as proc:
        yield proc


def test_the_worker_listens_on_loopback_only(worker: WorkerProcess) -> None:
    sockets = listening_sockets(worker.pid)
    assert ("127.0.0.1", worker.settings.worker.web_port) in sockets
    # Nothing else the worker opens (Faust's web server, a console, ...) listens elsewhere.
    assert {address for address, _ in sockets} == {"127.0.0.1"}, sockets


def test_faust_does_not_serve_its_state_tables(worker: WorkerProcess) -> None:
    base = worker_url(worker.settings)
    for path in ("/table/", "/table/tracepipe-assembly/", "/router/"):
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(base + path, timeout=30)
        assert missing.value.code == 404, path


def post_query(worker: WorkerProcess, sql: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{worker_url(worker.settings)}/api/query",
        data=json.dumps({"sql": sql}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def probes(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """The issue's statements, and others readonly=1 alone lets through on chDB: the SQL and
    what the refusal says."""
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2\n")
    return {
        "file": (f"SELECT * FROM file('{secret}', 'LineAsString')", "readonly mode"),
        "outfile": (
            f"SELECT 'x' INTO OUTFILE '{tmp_path / 'written.csv'}' FORMAT CSV",
            "INTO OUTFILE",
        ),
        "several": ("SELECT 1; SELECT * FROM system.one", "several statements"),
        "describe": (f"DESCRIBE file('{secret}', 'TSVWithNames')", "table function"),
        "system": ("SYSTEM STOP MERGES", "not a read-only statement"),
    }


def test_api_query_refuses_with_a_400_saying_why(worker: WorkerProcess, tmp_path: Path) -> None:
    for name, (sql, reason) in probes(tmp_path).items():
        status, body = post_query(worker, sql)
        assert status == 400, (name, body)
        assert body["refused"] is True, (name, body)
        assert reason in body["error"] and "\n" not in body["error"], (name, body)
        assert "hunter2" not in body["error"]
    assert not (tmp_path / "written.csv").exists()
    # Reading stays open: the CLI's own queries and the user's SELECTs.
    assert post_query(worker, "SELECT count() AS n FROM otel_traces FINAL") == (
        200,
        {"rows": [{"n": 0}]},
    )


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_query_sql_refuses_the_same_with_or_without_a_worker(
    worker: WorkerProcess, tmp_path: Path
) -> None:
    alone = {
        **worker.env,
        "TRACEPIPE_WORKER_WEB_PORT": str(free_port()),
        "TRACEPIPE_CLICKHOUSE_URL": f"chdb://{tmp_path / 'chdb'}",
    }
    # The direct path reads an existing store (a query never creates one).
    assert run_cli(alone, "db", "migrate").returncode == 0
    for name, (sql, reason) in probes(tmp_path).items():
        errors = []
        for env in (worker.env, alone):
            done = run_cli(env, "query", "sql", sql)
            assert done.returncode != 0, (name, done.stdout)
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and reason in lines[0], (name, done.stderr)
            errors.append(lines[0])
        assert errors[0] == errors[1], name
    assert not (tmp_path / "written.csv").exists()
    done = run_cli(alone, "query", "sql", "SELECT 41 + 1 AS answer")
    assert done.returncode == 0 and "42" in done.stdout, done.stderr
