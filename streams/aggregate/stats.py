"""What a window knows of one key: exact counts, sum, min and max, the latency sketch and the
slowest exemplars; mergeable across partials."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from streams.aggregate.sketch import LatencySketch


class Exemplar(NamedTuple):
    """A slow call a window points at, so a user can jump from a number to a trace."""

    duration_ns: int
    trace_id: str
    span_id: str


@dataclass
class WindowStats:
    """Mergeable aggregate of one key in one window: counts, sum/min/max, sketch, exemplars."""

    sketch: LatencySketch
    count: int = 0
    errors: int = 0
    sum_ns: int = 0
    min_ns: int = 0
    max_ns: int = 0
    exemplars: list[Exemplar] = field(default_factory=list)

    def quantile(self, q: float) -> float:
        """The duration in ns at quantile q, from the sketch, clamped to the exact min and max."""
        if self.count == 0:
            return 0.0
        return self.sketch.quantile(q, (self.min_ns, self.max_ns))

    def merge(self, other: WindowStats, exemplar_count: int) -> None:
        """Fold another partial of the same key and window into this one."""
        if other.count == 0:
            return
        if self.count == 0:
            self.min_ns, self.max_ns = other.min_ns, other.max_ns
        else:
            self.min_ns = min(self.min_ns, other.min_ns)
            self.max_ns = max(self.max_ns, other.max_ns)
        self.count += other.count
        self.errors += other.errors
        self.sum_ns += other.sum_ns
        self.sketch.merge(other.sketch)
        self.exemplars = slowest(self.exemplars + other.exemplars, exemplar_count)


def window_stats(
    durations_ns: Sequence[int] | npt.NDArray[np.int64],
    errors: int,
    exemplars: list[Exemplar],
    relative_accuracy: float,
) -> WindowStats:
    """The stats of a window holding these durations (at least one): exact counts, sum, min and
    max, and the sketch folded in one vectorized call."""
    durations = np.asarray(durations_ns, dtype=np.int64)
    sketch = LatencySketch(relative_accuracy)
    sketch.add_many(durations)
    return WindowStats(
        sketch=sketch,
        count=len(durations),
        errors=errors,
        sum_ns=int(durations.sum()),
        min_ns=int(durations.min()),
        max_ns=int(durations.max()),
        exemplars=exemplars,
    )


def slowest(exemplars: Iterable[Exemplar], k: int) -> list[Exemplar]:
    """The k slowest exemplars, slowest first (ties broken by trace id for determinism)."""
    return heapq.nlargest(k, exemplars)
