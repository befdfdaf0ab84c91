"""`held`: a batch's messages reach the consumer's final ack only if the batch completed, even
though the take buffer acks them in a `finally` (as it does when the worker stops mid-batch)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from faust.types.tuples import ConsumerMessage

from streams.batch_agent import current_events, gone_stale, held


@dataclass
class RecordingConsumer:
    """Faust's consumer boundary: which offsets were finally acknowledged (committable)."""

    acked: list[int] = field(default_factory=list)

    def ack(self, message: ConsumerMessage) -> bool:
        message.acked = True
        self.acked.append(message.offset)
        return True


@dataclass
class App:
    consumer: RecordingConsumer


@dataclass
class Event:
    message: ConsumerMessage


def batch(offsets: Sequence[int]) -> list[Event]:
    """Events as the take buffer holds them: each message with the conductor's one reference."""
    events = []
    for offset in offsets:
        message = ConsumerMessage("tracepipe.spans", 0, offset, 0.0, 0, None, None, b"", None)
        message.incref()
        events.append(Event(message))
    return events


async def take_and_process(app: Any, events: list[Event], fail: BaseException | None) -> None:
    # The take buffer's shape: the body runs, then every event is acked in a `finally`.
    try:
        with held(app, events):
            await asyncio.sleep(0)
            if fail is not None:
                raise fail
    finally:
        for event in events:
            event.message.ack(app.consumer)


def test_a_finished_batch_is_acknowledged_once() -> None:
    app = App(RecordingConsumer())
    asyncio.run(take_and_process(app, batch([5, 6, 7]), fail=None))
    assert app.consumer.acked == [5, 6, 7]


@pytest.mark.parametrize("fail", [asyncio.CancelledError(), RuntimeError("bug")])
def test_an_interrupted_batch_is_never_acknowledged(fail: BaseException) -> None:
    app = App(RecordingConsumer())
    events = batch([5, 6, 7])
    with pytest.raises(type(fail)):
        asyncio.run(take_and_process(app, events, fail=fail))
    assert app.consumer.acked == []
    assert [e.message.refcount for e in events] == [1, 1, 1]


@dataclass
class FlowControl:
    """Faust's flow control: suspended from a rebalance's start until the seek is done."""

    active: bool = True

    def is_active(self) -> bool:
        return self.active


@dataclass
class RebalancingApp:
    """Faust's app as `current_events` reads it: the group generation and flow control."""

    consumer: RecordingConsumer
    consumer_generation_id: int
    flow_control: FlowControl = field(default_factory=FlowControl)


def test_a_batch_from_before_a_rebalance_is_left_unacked_for_good() -> None:
    app: Any = RebalancingApp(RecordingConsumer(), consumer_generation_id=4)
    events = batch([5, 6, 7])
    for event, generation in zip(events, [3, 4, 4], strict=True):
        event.message.generation_id = generation
    fresh = current_events(app, events)
    assert [e.message.offset for e in fresh] == [6, 7]
    asyncio.run(take_and_process(app, events, fail=None))
    # Offset 5 will be read again after the seek to the committed offset: never acked here.
    assert app.consumer.acked == [6, 7]


def test_nothing_is_current_while_a_rebalance_is_under_way() -> None:
    app: Any = RebalancingApp(RecordingConsumer(), 4, FlowControl(active=False))
    events = batch([5, 6])
    for event in events:
        event.message.generation_id = 4
    assert current_events(app, events) == []
    asyncio.run(take_and_process(app, events, fail=None))
    assert app.consumer.acked == []


def test_a_batch_goes_stale_when_a_rebalance_begins_while_it_is_processed() -> None:
    app: Any = RebalancingApp(RecordingConsumer(), 4)
    events = batch([5, 6])
    for event in events:
        event.message.generation_id = 4
    assert current_events(app, events) == events
    assert not gone_stale(app, events)
    app.flow_control.active = False  # the consumer thread starts a rebalance
    assert gone_stale(app, events)
    asyncio.run(take_and_process(app, events, fail=None))
    assert app.consumer.acked == []  # its re-read copy replaces it
