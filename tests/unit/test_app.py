"""The Faust app takes its backpressure bounds from the worker settings."""

from __future__ import annotations

from streams.app import faust_app
from streams.config import Settings, WorkerConfig


def test_backpressure_knobs_reach_faust() -> None:
    settings = Settings(
        worker=WorkerConfig(stream_buffer_maxsize=256, consumer_max_fetch_bytes=262_144)
    )
    conf = faust_app(settings).conf
    assert conf.stream_buffer_maxsize == 256
    assert conf.consumer_max_fetch_size == 262_144
