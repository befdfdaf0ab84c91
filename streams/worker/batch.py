"""What every batching Faust agent and timer shares: holding a batch's offsets until its work is
done, leaving stale batches for redelivery after a rebalance, sending dead letters, stopping
cleanly. The dead letters themselves (`rejected_event`) are streams.deadletter's."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import faust
from faust.exceptions import NotReady

from streams.deadletter import REASON_HEADER, STAGE_HEADER, DeadLetter
from streams.telemetry import Counters

log = logging.getLogger("tracepipe.deadletter")


@contextmanager
def held(app: faust.App, events: Sequence[Any]) -> Iterator[None]:
    """Keep the events' offsets uncommitted until the block completes without an exception.

    One more reference on each message, released only on success. The take buffer acknowledges
    its events in a `finally`, and when the worker stops faust-streaming closes that buffer
    (Stream.on_stop) before it cancels the agent: without this reference a stopped or failed
    batch would be committed unstored. With it, the batch is redelivered after restart.
    """
    for event in events:
        event.message.incref()
    yield
    for event in events:
        event.message.ack(app.consumer)


def current_generation(app: faust.App) -> int | None:
    """The consumer group generation a stage works in now (bumped by every rebalance); None
    while a rebalance is under way.

    Faust's own test (its streams drop events by it too): flow control is suspended from the
    start of a rebalance until the seek back to the committed offsets is done. Not
    `app.rebalancing`, which stays set until after flow resumes and messages are delivered.
    """
    return app.consumer_generation_id if app.flow_control.is_active() else None


def current_events(app: faust.App, events: Sequence[Any]) -> list[Any]:
    """The events of a batch read since the latest rebalance; the others are left unacked.

    After every rebalance faust-streaming seeks each assigned partition back to its committed
    offset, so a batch taken before (or during) the rebalance is delivered again. Its stale
    copy must change no state that the fresh copy will change again (latency windows would
    count it twice) and must never be acknowledged (an ack could commit it before the fresh
    copy is processed): each stale message keeps one reference for good.
    """
    generation = current_generation(app)
    fresh: list[Any] = []
    stale: list[Any] = []
    for event in events:
        if generation is not None and event.message.generation_id == generation:
            fresh.append(event)
        else:
            event.message.incref()
            stale.append(event)
    if stale:
        log.info(
            "%d records of %s left for redelivery after a rebalance (generation %s, theirs %s)",
            len(stale),
            stale[0].message.topic,
            generation,
            sorted({e.message.generation_id for e in stale}, key=str),
        )
    return fresh


def gone_stale(app: faust.App, events: Sequence[Any]) -> bool:
    """True if a rebalance began since `events` were taken as current (the stale ones are
    then left unacked, as `current_events` does). The consumer thread starts a rebalance at
    any moment: an agent asks this once its state changes are made, and drops the batch if
    so, since the whole batch comes again after the seek."""
    return len(current_events(app, events)) < len(events)


def register_timer(
    app: faust.App, interval_s: float, name: str, tick: Callable[[], Awaitable[None]]
) -> None:
    """Run `tick` every `interval_s` seconds, except once the worker is stopping.

    Faust stops the producer before the app's timers: a tick that sends then (the sweep's
    trace records, the emit's partials) got `NotReady`, which crashed the stop (exit status 1,
    "We experienced a crash!"). Nothing a tick does is acknowledged before its sends are
    delivered, so a tick cut short by the stop is simply done again after the restart.
    """

    async def guarded() -> None:
        if app.should_stop:
            return
        try:
            await tick()
        except NotReady:
            if not app.should_stop:
                raise
            log.info("%s: cut short by the stop; redone after the restart", name)

    app.timer(interval_s, name=name)(guarded)


MessagesByPartition = dict[int, list[Any]]
"""A batch's Kafka messages by the partition they were read from, in offset order."""


def messages_by_partition(events: Sequence[Any]) -> MessagesByPartition:
    """Group a batch's messages by partition (a stage that holds them acks them in order)."""
    grouped: MessagesByPartition = {}
    for event in events:
        message = event.message
        grouped.setdefault(message.partition, []).append(message)
    return grouped


async def send_dead_letter(dlq_topic: faust.TopicT, letter: DeadLetter, counters: Counters) -> None:
    """Publish one dead letter and wait until the broker has it; count it by reason and stage."""
    reason = letter.header(REASON_HEADER) or "unknown"
    stage = letter.header(STAGE_HEADER) or "unknown"
    delivery = await dlq_topic.send(key=letter.key, value=letter.value, headers=letter.headers)
    await delivery
    counters.inc("tracepipe_dlq_records_total", reason=reason, stage=stage)
    log.warning("sent a record to %s: %s (%s)", dlq_topic.get_topic_name(), reason, stage)
