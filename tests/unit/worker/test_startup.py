"""A taken web port is one line naming the setting; the worker collects garbage less often."""

from __future__ import annotations

import gc
import logging
import socket

import pytest

from streams.config import Settings, WorkerConfig
from streams.errors import ConfigError
from streams.worker.faust_app import faust_app
from streams.worker.startup import (
    GC_YOUNG_THRESHOLD,
    Worker,
    check_web_port,
    collect_garbage_less_often,
)


def test_a_taken_web_port_is_one_line_naming_the_setting() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        app = faust_app(Settings(worker=WorkerConfig(web_port=port)))
        with pytest.raises(ConfigError) as info:
            check_web_port(app)
    message = str(info.value)
    assert message.startswith(f"port {port} ")
    assert "worker.web_port (TRACEPIPE_WORKER_WEB_PORT)" in message
    check_web_port(app)  # free again


def test_the_worker_collects_garbage_less_often() -> None:
    before = gc.get_threshold()
    try:
        collect_garbage_less_often()
        assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD > before[0]
        assert gc.get_freeze_count() > 0
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


@pytest.mark.parametrize("level", ["WARNING", "ERROR", "INFO"])
def test_libraries_debug_records_are_not_built_at_the_workers_level(level: str) -> None:
    # Faust's spinner set the root logger to DEBUG at WARNING and above (records built, dropped).
    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    worker = Worker(faust_app(Settings()), loglevel=level, quiet=True)
    try:
        worker._setup_logging()
        fetcher = logging.getLogger("aiokafka.consumer.fetcher")
        assert fetcher.getEffectiveLevel() == logging.getLevelName(level)
        assert not fetcher.isEnabledFor(logging.DEBUG)
    finally:
        root.setLevel(before[0])
        root.handlers[:] = before[1]
