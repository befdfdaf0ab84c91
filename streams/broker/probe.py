"""Probes of the network side of a broker: a free port, a port in use, a broker that answers."""

from __future__ import annotations

import errno
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from streams.errors import BrokerError

log = logging.getLogger("tracepipe.broker")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port the OS says is free right now on `host` (for tests; racy by nature)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(host: str, port: int) -> bool:
    """Whether another process listens on (or holds) `host:port`, so a server cannot bind it;
    OSError when `host` cannot be bound at all (not an address of this machine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Kafka and aiohttp bind with SO_REUSEADDR too: TIME_WAIT leftovers do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def _port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


class _QuietClientLog:
    """librdkafka's logger: 'connection refused' is expected while the broker boots."""

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        log.debug("librdkafka: " + msg, *args)


def wait_for_broker(
    bootstrap: str,
    timeout_s: float,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Block until the broker at `bootstrap` answers a metadata request; BrokerError on timeout.

    `alive`, when given, is polled so a broker process that dies fails fast instead of timing out.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    deadline = time.monotonic() + timeout_s
    host, _, port_text = bootstrap.split(",")[0].strip().rpartition(":")
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError as err:
        raise BrokerError(f"bootstrap {bootstrap!r} is not host:port") from err
    last_error = "no answer"
    admin: Any = None
    while True:
        if alive is not None and not alive():
            raise BrokerError(f"the broker process exited before {bootstrap} answered")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerError(
                f"no Kafka broker answered at {bootstrap} within {timeout_s:.0f} s ({last_error})"
            )
        # A plain TCP probe first: librdkafka would otherwise back off between refused connects.
        if not _port_open(host, port):
            last_error = "connection refused"
            time.sleep(min(0.2, max(remaining, 0.0)))
            continue
        if admin is None:
            admin = AdminClient(
                {
                    "bootstrap.servers": bootstrap,
                    "reconnect.backoff.ms": 100,
                    "reconnect.backoff.max.ms": 500,
                },
                logger=_QuietClientLog(),
            )
        try:
            metadata = admin.list_topics(timeout=max(0.5, min(5.0, remaining)))
        except KafkaException as err:
            last_error = str(err)
            continue
        if metadata.brokers:
            return
        last_error = "metadata without brokers"
        time.sleep(0.2)
