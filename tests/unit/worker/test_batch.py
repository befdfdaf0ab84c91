"""`held`: a batch's messages reach the consumer's final ack only if the batch completed, even
though the take buffer acks them in a `finally` (as it does when the worker stops mid-batch)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from faust.exceptions import NotReady
from faust.types.tuples import ConsumerMessage

from streams.worker.batch import current_events, gone_stale, held, register_timer


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


@dataclass
class TimerApp:
    """Faust's app boundary for timers: whether it is stopping, and the timer registered."""

    should_stop: bool = False
    ticks: list[Any] = field(default_factory=list)

    def timer(self, interval: float, name: str) -> Any:
        def register(fun: Any) -> Any:
            self.ticks.append(fun)
            return fun

        return register


def timer_of(app: TimerApp, tick: Any) -> Any:
    register_timer(app, 1.0, "tracepipe.test", tick)  # type: ignore[arg-type]
    return app.ticks[0]


def test_a_timer_cut_short_by_the_stop_does_not_crash_the_worker() -> None:
    app = TimerApp()

    async def tick() -> None:
        app.should_stop = True  # the stop begins while the tick sends
        raise NotReady("Producer service not yet started")

    asyncio.run(timer_of(app, tick)())  # nothing raised: Faust would crash the worker (exit 1)


def test_a_timer_does_nothing_once_the_worker_is_stopping() -> None:
    app = TimerApp(should_stop=True)
    ran: list[bool] = []

    async def tick() -> None:
        ran.append(True)

    asyncio.run(timer_of(app, tick)())
    assert ran == []


def test_a_producer_not_ready_outside_a_stop_still_fails_the_tick() -> None:
    app = TimerApp()

    async def tick() -> None:
        raise NotReady("Producer service not yet started")

    with pytest.raises(NotReady):
        asyncio.run(timer_of(app, tick)())
