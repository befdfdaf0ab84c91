"""The Faust app takes its backpressure bounds and session timeout from the worker settings;
the rewind after a rebalance leaves changelogs and committed partitions alone."""

from __future__ import annotations

from faust.types import TP

from streams.config import Settings, WorkerConfig
from streams.worker.faust_app import faust_app, never_committed


def test_backpressure_knobs_reach_faust() -> None:
    settings = Settings(
        worker=WorkerConfig(stream_buffer_maxsize=256, consumer_max_fetch_bytes=262_144)
    )
    conf = faust_app(settings).conf
    assert conf.stream_buffer_maxsize == 256
    assert conf.consumer_max_fetch_size == 262_144


def test_the_session_timeout_reaches_faust_with_heartbeats_a_third_of_it() -> None:
    conf = faust_app(Settings()).conf
    assert (conf.broker_session_timeout, conf.broker_heartbeat_interval) == (10.0, 3.0)
    short = faust_app(Settings(worker=WorkerConfig(session_timeout_ms=6_000))).conf
    assert (short.broker_session_timeout, short.broker_heartbeat_interval) == (6.0, 2.0)
    long = faust_app(Settings(worker=WorkerConfig(session_timeout_ms=45_000))).conf
    assert (long.broker_session_timeout, long.broker_heartbeat_interval) == (45.0, 3.0)


def test_never_committed_leaves_changelogs_and_committed_partitions_alone() -> None:
    committed: dict[TP, int | None] = {
        TP("a", 1): None,
        TP("a", 0): 0,
        TP("a", 2): 5,
        TP("log", 0): None,
    }
    assert never_committed(committed, {"log"}) == [TP("a", 0), TP("a", 1)]
