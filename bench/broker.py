"""The broker a benchmark runs on (`TRACEPIPE_KAFKA_BOOTSTRAP`, or a local one started for it)
and its pid, whose CPU a benchmark reads beside the worker's."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from streams.broker.local import LocalKafka
from streams.broker.probe import free_port
from streams.config import LocalKafkaConfig


@contextmanager
def bench_broker(root: Path) -> Iterator[str]:
    """Yield a bootstrap address; a broker started here is stopped on exit."""
    bootstrap = os.environ.get("TRACEPIPE_KAFKA_BOOTSTRAP")
    if bootstrap:
        yield bootstrap
        return
    local = LocalKafka(LocalKafkaConfig(port=free_port(), data_dir=str(root / "kafka")))
    try:
        yield local.up()
    finally:
        local.down()


LISTEN = "0A"
"""The TCP state of a listening socket in /proc/net/tcp."""


def listening_inodes(proc_net_tcp: str, port: int) -> set[int]:
    """The socket inodes listening on `port` in the text of /proc/net/tcp or tcp6."""
    inodes = set()
    for line in proc_net_tcp.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != LISTEN:
            continue
        if int(fields[1].rsplit(":", 1)[1], 16) == port:
            inodes.add(int(fields[9]))
    return inodes


def listener_pid(port: int, proc: Path = Path("/proc")) -> int | None:
    """The pid of the process listening on TCP `port` on this machine (the broker: its CPU is
    read beside the worker's), None when no process of ours is found."""
    inodes: set[int] = set()
    for table in ("tcp", "tcp6"):
        path = proc / "net" / table
        if path.exists():
            inodes |= listening_inodes(path.read_text(), port)
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in wanted for fd in (entry / "fd").iterdir()):
                return int(entry.name)
        except OSError:  # gone, or not ours to read
            continue
    return None


def bootstrap_port(bootstrap: str) -> int:
    """The port of the first `host:port` of a bootstrap list."""
    return int(bootstrap.split(",")[0].strip().rsplit(":", 1)[1])
