"""Who owns a chDB data path: one process at a time, named in a lock file inside the path.

chDB locks its path only while the engine is open, and the worker opens it lazily on its writer
thread, after it has joined the consumer group. The claim here is taken first (the worker takes
it before Faust starts) and held for as long as the process uses the path: an exclusive `flock`
on `tracepipe-owner.lock`, which also records the owner's pid and command so a second process
can say who is in the way. The kernel drops the lock when the owner exits, even on SIGKILL.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from streams.errors import DataPathInUseError
from streams.paths import resolve_path

OWNER_FILE = "tracepipe-owner.lock"
"""The lock file's name inside a chDB data path."""

DEFAULT_ADVICE = (
    "stop that process, or use another data path: set clickhouse.url (TRACEPIPE_CLICKHOUSE_URL)"
)
# The owner writes its name just after it takes the lock; a rival that reads in between waits
# this long for it before saying "another process".
_OWNER_WRITE_WAIT_S = 0.5

_held: dict[str, _Held] = {}
_held_lock = threading.Lock()


@dataclass
class _Held:
    fd: int
    claims: int


def this_command() -> str:
    """This process's command line as a person typed it (`tracepipe worker`), shortened."""
    argv = list(sys.argv) or ["python"]
    program = Path(argv[0])
    # `python -m streams worker` has the module's __main__.py as argv[0].
    if program.name == "__main__.py":
        name = f"python -m {program.parent.name}"
    elif argv[0] == "-c":
        name = "python -c"
    else:
        name = program.name
    text = " ".join([name, shlex.join(argv[1:])]) if argv[1:] else name
    return text if len(text) <= 120 else text[:117] + "..."


def _owner_record() -> bytes:
    since = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return json.dumps({"pid": os.getpid(), "command": this_command(), "since": since}).encode()


def _describe_owner(lock_file: Path) -> str | None:
    deadline = time.monotonic() + _OWNER_WRITE_WAIT_S
    while True:
        try:
            record = json.loads(lock_file.read_bytes() or b"null")
        except (OSError, ValueError):
            record = None
        if isinstance(record, dict) and "pid" in record:
            command, since = record.get("command", "?"), record.get("since", "?")
            return f"pid {record['pid']} ({command}, since {since})"
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)


class DataPathClaim:
    """This process's claim on a chDB data path; `release()` (or leaving `with`) gives it up."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._released = False

    def release(self) -> None:
        """Give the claim up; the lock goes once every claim of this process is released."""
        if self._released:
            return
        self._released = True
        with _held_lock:
            held = _held[self.path]
            held.claims -= 1
            if held.claims == 0:
                del _held[self.path]
                # A stale name would only mislead whoever reads the file next.
                os.ftruncate(held.fd, 0)
                os.close(held.fd)

    def __enter__(self) -> DataPathClaim:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def claim_data_path(path: str | Path, advice: str = DEFAULT_ADVICE) -> DataPathClaim:
    """Claim the chDB data path `path` for this process (creating it if missing); raise
    DataPathInUseError naming the owner, followed by `advice`, if another process has it."""
    key = str(resolve_path(str(path)).resolve())
    with _held_lock:
        held = _held.get(key)
        if held is not None:
            held.claims += 1
            return DataPathClaim(key)
        Path(key).mkdir(parents=True, exist_ok=True)
        lock_file = Path(key) / OWNER_FILE
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            os.close(fd)
            raise DataPathInUseError(key, _describe_owner(lock_file), advice) from err
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, _owner_record(), 0)
        _held[key] = _Held(fd, 1)
        return DataPathClaim(key)
