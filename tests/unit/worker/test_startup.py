"""A taken web port is one line naming the setting; the worker collects garbage less often."""

from __future__ import annotations

import gc
import socket

import pytest

from streams.config import Settings, WorkerConfig
from streams.errors import ConfigError
from streams.worker.faust_app import faust_app
from streams.worker.startup import GC_YOUNG_THRESHOLD, check_web_port, collect_garbage_less_often


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
