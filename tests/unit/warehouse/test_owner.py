"""A chDB data path belongs to one process: a rival is refused naming the owner's pid and
command, claims within one process share the lock, and an owner's death frees the path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from streams.config import Settings
from streams.errors import DataPathInUseError
from streams.query import open_reader
from streams.warehouse.owner import OWNER_FILE, claim_data_path

HOLDER = (
    "import sys, time\n"
    "from streams.warehouse.owner import claim_data_path\n"
    "claim = claim_data_path(sys.argv[1])\n"
    "print('claimed', flush=True)\n"
    "time.sleep(600)\n"
)


@contextmanager
def held_elsewhere(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the claim on `path` until the block ends (then killed)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "claimed"
        yield holder
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def test_a_rival_process_is_told_who_owns_the_path(tmp_path: Path) -> None:
    with held_elsewhere(tmp_path / "chdb") as holder, pytest.raises(DataPathInUseError) as info:
        claim_data_path(tmp_path / "chdb", "stop it")
    message = str(info.value)
    assert message.startswith(
        f"chDB data path {tmp_path / 'chdb'} is owned by pid {holder.pid} (python -c "
    )
    assert message.endswith("; stop it")
    assert "\n" not in message
    assert info.value.owner is not None and info.value.path == str(tmp_path / "chdb")


def test_the_owners_death_frees_the_path(tmp_path: Path) -> None:
    with held_elsewhere(tmp_path):
        pass  # SIGKILLed: no chance to release anything itself
    with claim_data_path(tmp_path):
        assert f'"pid": {os.getpid()}' in (tmp_path / OWNER_FILE).read_text()
    assert (tmp_path / OWNER_FILE).read_text() == ""


def test_claims_of_one_process_share_the_lock(tmp_path: Path) -> None:
    first = claim_data_path(tmp_path)
    second = claim_data_path(tmp_path / "." / "")
    first.release()
    first.release()  # idempotent: does not give up the second claim
    with pytest.raises(subprocess.CalledProcessError):
        subprocess.run(
            [sys.executable, "-c", HOLDER.replace("time.sleep(600)", ""), str(tmp_path)],
            check=True,
            capture_output=True,
        )
    second.release()
    done = subprocess.run(
        [sys.executable, "-c", HOLDER.replace("time.sleep(600)", ""), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "claimed"


def test_the_cli_says_who_owns_the_path_when_no_worker_answers(tmp_path: Path) -> None:
    settings = (
        Settings()
        .replace("clickhouse", url=f"chdb://{tmp_path}")
        .replace("worker", web_port=1)
    )
    with (
        held_elsewhere(tmp_path) as holder,
        pytest.raises(DataPathInUseError) as info,
        open_reader(settings),
    ):
        pass
    message = str(info.value)
    assert f"owned by pid {holder.pid} " in message
    assert "no worker answers at http://127.0.0.1:1" in message
    assert "worker.web_port (TRACEPIPE_WORKER_WEB_PORT)" in message
