"""The event-loop lag monitor on a driven clock: late wake-ups become the longest and the recent
stalls, on-time ones do not."""

from __future__ import annotations

import asyncio

import pytest

from streams.worker.loop_lag import RECENT_STALLS, LoopLag


class DrivenClock:
    """A clock that a fake sleep moves: each sleep lasts its duration plus the next delay."""

    def __init__(self, delays_s: list[float]) -> None:
        self.now_s = 1000.0
        self.delays_s = delays_s

    def __call__(self) -> float:
        return self.now_s

    async def sleep(self, duration_s: float) -> None:
        if not self.delays_s:
            raise asyncio.CancelledError
        self.now_s += duration_s + self.delays_s.pop(0)


def run_monitor(delays_s: list[float]) -> LoopLag:
    clock = DrivenClock(delays_s)
    lag = LoopLag(tick_s=0.1, reported_stall_s=0.05, clock=clock, wall_clock=clock)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(lag.run(sleep=clock.sleep))
    return lag


def test_late_wakeups_are_the_longest_and_the_recent_stalls() -> None:
    lag = run_monitor([0.0, 2.5, 0.001, 0.3, 0.0])
    snapshot = lag.snapshot()
    assert snapshot["ticks"] == 5
    assert snapshot["longest_ms"] == pytest.approx(2500.0)
    assert snapshot["latest_ms"] == pytest.approx(0.0)
    # The 1 ms wake-up is scheduling noise, below the reported threshold.
    assert [ms for _, ms in snapshot["stalls"]] == pytest.approx([2500.0, 300.0])
    # Each stall carries the (wall-clock) time the loop woke.
    assert snapshot["stalls"][0][0] == pytest.approx(1000.0 + 0.1 + 0.1 + 2.5)


def test_an_on_time_loop_reports_no_stall() -> None:
    snapshot = run_monitor([0.0] * 20).snapshot()
    assert snapshot["longest_ms"] == 0.0
    assert snapshot["stalls"] == []


def test_only_the_most_recent_stalls_are_kept() -> None:
    lag = run_monitor([1.0 + i for i in range(RECENT_STALLS + 5)])
    assert len(lag.stalls) == RECENT_STALLS
    assert lag.stalls[0][1] == pytest.approx(6.0)
    assert lag.longest_s == pytest.approx(RECENT_STALLS + 5.0)
