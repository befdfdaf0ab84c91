"""The span agent waits for an assembly sweep that is behind, never longer than its bound."""

from __future__ import annotations

import asyncio

from streams.telemetry import Counters
from streams.worker.assemble import SweepBacklog


def test_a_caught_up_sweep_lets_spans_in_at_once() -> None:
    counters = Counters()
    backlog = SweepBacklog(counters, max_wait_s=5)
    asyncio.run(asyncio.wait_for(backlog.wait(), 1))
    assert not backlog.behind
    assert counters.value("tracepipe_span_intake_waits_total") == 0


def test_spans_wait_while_the_sweep_is_behind_and_go_on_when_it_catches_up() -> None:
    counters = Counters()
    order: list[str] = []

    async def run() -> None:
        backlog = SweepBacklog(counters, max_wait_s=30)

        async def sweep() -> None:
            backlog.mark_behind()
            for _ in range(3):  # three more slices, the event loop free between them
                await asyncio.sleep(0)
                order.append("slice")
            backlog.mark_caught_up()

        async def span_agent() -> None:
            await asyncio.sleep(0)  # the sweep is behind by now
            assert backlog.behind
            await backlog.wait()
            order.append("batch")

        await asyncio.wait_for(asyncio.gather(sweep(), span_agent()), 5)

    asyncio.run(run())
    assert order == ["slice", "slice", "slice", "batch"]
    assert counters.value("tracepipe_span_intake_waits_total") == 1


def test_a_sweep_that_never_catches_up_holds_spans_back_only_for_the_bound() -> None:
    counters = Counters()

    async def run() -> None:
        backlog = SweepBacklog(counters, max_wait_s=0.05)
        backlog.mark_behind()
        await asyncio.wait_for(backlog.wait(), 5)
        assert backlog.behind

    asyncio.run(run())
    assert counters.value("tracepipe_span_intake_waits_total") == 1
