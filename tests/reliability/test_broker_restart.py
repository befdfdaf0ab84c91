"""Fault: the Kafka broker is stopped mid-stream and restarted while the worker keeps running.

The test runs a broker of its own (`streams.broker.local`, the `tracepipe kafka up|down`
machinery) on free ports and a data dir under tmp_path: never the shared one. The second half of
the workload is sent while the broker is down (the producer holds it until the broker is back).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.broker.local import LocalKafka
from streams.broker.probe import free_port
from streams.broker.topics import ensure_topics
from streams.config import LocalKafkaConfig
from streams.query import count_spans
from tests.integration.isolated import isolated_worker
from tests.reliability.harness import (
    WORKER_ENV,
    produce,
    record,
    reliability_scale,
    tally,
    wait_settled,
    wait_windows,
    webshop_workload,
)

pytestmark = pytest.mark.integration

TRACES = 400
OUTAGE_S = 10.0


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    """A broker for this test alone: it gets stopped, so it cannot be the shared one."""
    broker = LocalKafka(
        LocalKafkaConfig(
            port=free_port(),
            controller_port=free_port(),
            data_dir=str(tmp_path / "kafka"),
            heap_mb=384,
        )
    )
    broker.up()
    try:
        yield broker
    finally:
        broker.down()


def test_broker_stopped_and_restarted_mid_stream(own_broker: LocalKafka, tmp_path: Path) -> None:
    half = TRACES * reliability_scale() // 2
    worker = isolated_worker(own_broker.bootstrap, tmp_path / "run", **WORKER_ENV)
    ensure_topics(worker.settings.kafka)
    worker.start()
    try:
        first = webshop_workload(half, seed=3)
        produce(worker, first.spans)
        reader = worker.reader()
        worker.wait_for(lambda: count_spans(reader) >= len(first.spans) // 2, 180, "spans stored")
        own_broker.down()
        second = webshop_workload(half, seed=4)
        workload = first + second
        # The second half goes out while the broker is down: the producer buffers and retries.
        failures: list[BaseException] = []

        def send_second_half() -> None:
            try:
                produce(worker, second.spans)
            except BaseException as err:  # reported by the test thread below
                failures.append(err)

        sender = threading.Thread(target=send_second_half, daemon=True)
        sender.start()
        time.sleep(OUTAGE_S)
        own_broker.up()
        back = time.monotonic()
        sender.join(180)
        assert not sender.is_alive(), "the producer did not deliver after the broker came back"
        assert failures == []
        recovery_s = wait_settled(worker, workload, back, 240)
        spans, traces = tally(worker.reader(), workload)
        windows = wait_windows(worker, workload, 45)
    finally:
        worker.stop()

    result = record(
        "broker-restart",
        workload.describe(f"broker down for {OUTAGE_S:.0f} s mid-stream"),
        spans,
        traces,
        recovery_s,
        windows=windows,
        notes=([f"incomplete traces: {traces.incomplete_ids}"] if traces.incomplete_ids else []),
    )
    assert (spans.losses, spans.unexpected) == (0, 0), result
    assert traces.complete == traces.expected, result
    # Spans sent during the outage count in their windows: the idle rule waits again once the
    # worker sees its sources (AggregationStage.emitting), instead of counting them late.
    assert (windows.exact, windows.spans_late) == (windows.expected, 0), result
