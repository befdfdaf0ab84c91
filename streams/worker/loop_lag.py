"""How late the worker's event loop runs: a task sleeps one tick at a time and records how late
it wakes.

Work that holds the loop (a long decode, a blocking call) delays every timer, probe and request
queued behind it; a sleep that wakes late measures that delay from inside, with no profiler.
`/api/stats` shows the snapshot, so a benchmark or an operator can read the longest stall and
when the recent ones happened (wall-clock times, comparable with other processes' readings).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

TICK_S = 0.1
"""How often the monitor wakes: a stall shorter than this may go unseen."""
REPORTED_STALL_S = 0.05
"""Lateness from which a wake-up is kept in the recent stalls (shorter ones are scheduling)."""
RECENT_STALLS = 64
"""How many recent stalls the snapshot lists; a reader every few seconds sees them all."""


class LoopLag:
    """The event loop's lateness: the longest since start, the latest, and the recent stalls."""

    def __init__(
        self,
        tick_s: float = TICK_S,
        reported_stall_s: float = REPORTED_STALL_S,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.tick_s = tick_s
        self.reported_stall_s = reported_stall_s
        self._clock = clock
        self._wall_clock = wall_clock
        self.ticks = 0
        self.longest_s = 0.0
        self.latest_s = 0.0
        self.stalls: deque[tuple[float, float]] = deque(maxlen=RECENT_STALLS)
        """(wall-clock time the loop woke, seconds late) of recent stalls, oldest first."""

    def record(self, late_s: float) -> None:
        """Count one wake-up that came `late_s` seconds after it was due."""
        late_s = max(0.0, late_s)
        self.ticks += 1
        self.latest_s = late_s
        self.longest_s = max(self.longest_s, late_s)
        if late_s >= self.reported_stall_s:
            self.stalls.append((self._wall_clock(), late_s))

    async def run(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Measure until cancelled (run as a task on the loop to watch)."""
        while True:
            due = self._clock() + self.tick_s
            await sleep(self.tick_s)
            self.record(self._clock() - due)

    def snapshot(self) -> dict[str, Any]:
        """The figures as JSON-ready values, in milliseconds; stalls as [unix seconds, ms]."""
        return {
            "tick_ms": self.tick_s * 1e3,
            "ticks": self.ticks,
            "longest_ms": round(self.longest_s * 1e3, 1),
            "latest_ms": round(self.latest_s * 1e3, 1),
            "stalls": [[round(at, 3), round(late * 1e3, 1)] for at, late in self.stalls],
        }
