"""The broker a benchmark runs on: `TRACEPIPE_KAFKA_BOOTSTRAP`, or a local one started for it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from streams.broker.local import LocalKafka, free_port
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
