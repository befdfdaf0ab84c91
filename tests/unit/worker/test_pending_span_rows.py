"""PendingSpanRows: several agent batches' otel_traces rows in one insert, their messages
acknowledged only once stored, stale batches left out and never acknowledged."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pytest
from faust.types.tuples import ConsumerMessage

from streams.worker.sink import PendingSpanRows
from tests.unit.worker.test_batch import Event, FlowControl, RecordingConsumer


@dataclass
class App:
    """Faust's app as the rows' batches read it: the consumer, the group generation, flow."""

    consumer: RecordingConsumer = field(default_factory=RecordingConsumer)
    consumer_generation_id: int = 4
    flow_control: FlowControl = field(default_factory=FlowControl)


@dataclass
class Writer:
    """The warehouse writer's boundary: the inserts it was handed, in order."""

    inserts: list[list[int]] = field(default_factory=list)

    async def write_arrow(self, table: str, data: Any) -> int:
        assert table == "otel_traces"
        self.inserts.append(data.column("n").to_pylist())
        return int(data.num_rows)


def agent_batch(first_offset: int, spans: int) -> tuple[Any, list[Event]]:
    """One agent batch: a message per 10 spans (generation 4), and its rows."""
    events = []
    for i in range(-(-spans // 10)):
        message = ConsumerMessage(
            "tracepipe.spans", 0, first_offset + i, 0.0, 0, None, None, b"", None
        )
        message.generation_id = 4
        events.append(Event(message))
    return pa.table({"n": list(range(first_offset * 10, first_offset * 10 + spans))}), events


def test_batches_wait_for_one_insert_and_are_acked_after_it() -> None:
    app, writer = App(), Writer()
    pending = PendingSpanRows(app, writer, max_spans=100, max_wait_s=60)  # type: ignore[arg-type]

    async def run() -> None:
        await pending.add(*agent_batch(0, 30))
        await pending.add(*agent_batch(3, 30))
        assert writer.inserts == [] and app.consumer.acked == []
        assert pending.spans == 60
        await pending.store_due()  # the oldest has not waited 60 s
        assert writer.inserts == []
        await pending.add(*agent_batch(6, 40))  # 100 waiting: stored at once, in one insert

    asyncio.run(run())
    assert writer.inserts == [list(range(100))]
    assert app.consumer.acked == list(range(10))
    assert pending.spans == 0


def test_the_oldest_batch_waits_at_most_max_wait() -> None:
    app, writer = App(), Writer()
    pending = PendingSpanRows(app, writer, max_spans=100, max_wait_s=0.05)  # type: ignore[arg-type]

    async def run() -> None:
        await pending.add(*agent_batch(0, 20))
        await asyncio.sleep(0.06)
        await pending.store_due()

    asyncio.run(run())
    assert writer.inserts == [list(range(20))]
    assert app.consumer.acked == [0, 1]


def test_a_batch_gone_stale_is_not_stored_and_never_acked() -> None:
    app, writer = App(), Writer()
    pending = PendingSpanRows(app, writer, max_spans=100, max_wait_s=60)  # type: ignore[arg-type]
    fresh_rows, fresh = agent_batch(5, 20)

    async def run() -> None:
        await pending.add(*agent_batch(0, 20))
        app.consumer_generation_id = 5  # a rebalance: the first batch is re-read after the seek
        for event in fresh:
            event.message.generation_id = 5
        await pending.add(fresh_rows, fresh)
        await pending.store()

    asyncio.run(run())
    assert writer.inserts == [list(range(50, 70))]
    assert app.consumer.acked == [5, 6]


def test_a_store_cut_short_acks_nothing() -> None:
    app = App()

    class FailingWriter(Writer):
        async def write_arrow(self, table: str, data: Any) -> int:
            raise asyncio.CancelledError  # the worker stops mid-insert

    pending = PendingSpanRows(app, FailingWriter(), max_spans=10, max_wait_s=60)  # type: ignore[arg-type]

    async def run() -> None:
        await pending.add(*agent_batch(0, 20))

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run())
    assert app.consumer.acked == []
