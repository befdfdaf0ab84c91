"""Phase one of the aggregation: event-time tumbling windows per source partition.

Each worker aggregates the partitions it owns (spans stay keyed by trace id: no repartition of
raw spans). A partition's watermark is the highest event time it has seen minus the allowed
lateness; a window closes when the watermark passes its end, and its partials (one per key) go
to the merge stage together with the partition's new watermark. An observation whose window has
already closed for its partition is late: counted per service, never folded in.

Idle partitions: a partition that has seen no observation for `partition_idle_ms` of processing
time moves its watermark to wall clock minus the allowed lateness, so a quiet partition cannot
hold every window open forever. Event time is then assumed to track wall clock; spans that turn
up later with older event times count as late.

Clocks ahead: event time moves a watermark only up to the worker's wall clock. One service whose
clock runs minutes ahead would otherwise carry its partitions' watermarks minutes into the
future and make every other service's spans there late; instead its own windows (keyed by its
end times, as reported) stay open until wall clock passes them.

Per span the work is a few dict operations and an append: durations are kept raw (8 bytes each)
per window and key until the window closes, and only then folded into its sketch with one
vectorized call; the slowest exemplars are picked per batch.
"""

from __future__ import annotations

import heapq
from array import array
from collections import Counter
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from streams.aggregate.sketch import LatencySketch

WindowKey = tuple[str, ...]
"""A window's dimensions: (service, operation, kind, status class) or (client, server, type)."""


class Observation(NamedTuple):
    """One timed call to aggregate: a span, or a service-graph edge seen in a trace."""

    end_time_unix_nano: int
    duration_ns: int
    key: WindowKey
    error: bool
    trace_id: str
    span_id: str


class Exemplar(NamedTuple):
    """A slow call a window points at, so a user can jump from a number to a trace."""

    duration_ns: int
    trace_id: str
    span_id: str


def window_start(time_unix_nano: int, window_ns: int) -> int:
    """Start of the epoch-aligned window holding `time_unix_nano`."""
    return time_unix_nano - time_unix_nano % window_ns


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


def _slowest_of_batch(slot: _Pending, k: int) -> list[Exemplar]:
    observations = slot.observations
    if k == 0:
        return []
    if len(observations) > k:
        # argpartition picks the k largest without sorting the batch.
        chosen = np.argpartition(np.asarray(slot.durations), -k)[-k:].tolist()
        observations = [observations[i] for i in chosen]
    return slowest((Exemplar(o.duration_ns, o.trace_id, o.span_id) for o in observations), k)


@dataclass
class _Pending:
    """One batch's observations of one key in one window, waiting to be folded."""

    durations: list[int] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    errors: int = 0


@dataclass
class _OpenWindow:
    """An open window of one key: its durations, kept raw until the window closes."""

    # 8 bytes per span for window + lateness: one vectorized sketch fold at close is far
    # cheaper per span than folding every batch (each distinct bin costs a store add).
    durations: array[int] = field(default_factory=lambda: array("q"))
    errors: int = 0
    exemplars: list[Exemplar] = field(default_factory=list)


@dataclass
class _PartitionWindows:
    """The open windows and the watermark of one source partition."""

    windows: dict[int, dict[WindowKey, _OpenWindow]] = field(default_factory=dict)
    # Hashes of the observations folded into each open window: a span sent twice (an SDK
    # retry) or a trace version published twice must count once, and re-read records after a
    # rebalance fold into fresh state, so the check is per window, not per delivery.
    seen: dict[int, set[int]] = field(default_factory=dict)
    max_event_ns: int | None = None
    closed_through_ns: int = 0
    last_observed_ns: int = 0


@dataclass(frozen=True)
class ClosedWindow:
    """A window one source partition has finished: its partial for one key."""

    source_partition: int
    window_start_unix_nano: int
    window_end_unix_nano: int
    key: WindowKey
    stats: WindowStats


class Folded(NamedTuple):
    """What one `WindowAggregator.add` did: late and duplicate observations dropped, and the
    end of the latest window it folded into (0: none), which its source records wait for."""

    late: int
    duplicates: int
    until_ns: int


class WindowAggregator:
    """Per-partition tumbling windows with watermarks; emits partials of closed windows."""

    def __init__(
        self,
        window_ms: int,
        allowed_lateness_ms: int,
        partition_idle_ms: int,
        relative_accuracy: float,
        exemplar_count: int,
    ) -> None:
        self.window_ns = window_ms * 1_000_000
        self.lateness_ns = allowed_lateness_ms * 1_000_000
        self.idle_ns = partition_idle_ms * 1_000_000
        self.relative_accuracy = relative_accuracy
        self.exemplar_count = exemplar_count
        self.late: Counter[str] = Counter()
        """Late observations by the key's first dimension (the service), since the last take."""
        self._partitions: dict[int, _PartitionWindows] = {}

    def add(self, partition: int, observations: Iterable[Observation], now_ns: int) -> Folded:
        """Fold one batch of a partition's observations, each identical observation once per
        window."""
        state = self._partitions.get(partition)
        if state is None:
            state = self._partitions[partition] = _PartitionWindows()
        window_ns = self.window_ns
        closed = state.closed_through_ns
        pending: dict[tuple[int, WindowKey], _Pending] = {}
        max_end = state.max_event_ns if state.max_event_ns is not None else -1
        late = duplicates = 0
        latest_start = -1
        seen_by_window = state.seen
        for obs in observations:
            end = obs.end_time_unix_nano
            start = end - end % window_ns
            if start + window_ns <= closed:
                late += 1
                self.late[obs.key[0]] += 1
                continue
            seen = seen_by_window.get(start)
            if seen is None:
                seen = seen_by_window[start] = set()
            identity = hash(obs)
            if identity in seen:
                duplicates += 1
                continue
            seen.add(identity)
            if start > latest_start:
                latest_start = start
            if end > max_end:
                max_end = end
            slot = pending.get((start, obs.key))
            if slot is None:
                slot = pending[(start, obs.key)] = _Pending()
            slot.durations.append(obs.duration_ns)
            slot.observations.append(obs)
            if obs.error:
                slot.errors += 1
        k = self.exemplar_count
        for (start, key), slot in pending.items():
            window = state.windows.get(start)
            if window is None:
                window = state.windows[start] = {}
            held = window.get(key)
            if held is None:
                held = window[key] = _OpenWindow()
            held.durations.extend(slot.durations)
            held.errors += slot.errors
            held.exemplars = slowest(held.exemplars + _slowest_of_batch(slot, k), k)
        if max_end >= 0:
            state.max_event_ns = max_end
        state.last_observed_ns = now_ns
        return Folded(late, duplicates, latest_start + window_ns if latest_start >= 0 else 0)

    def watermark(self, partition: int, now_ns: int, caught_up: bool = True) -> int | None:
        """The partition's watermark now (None before it has any): its highest event time, but
        never past `now_ns`, minus the allowed lateness; the idle fallback included (only when
        `caught_up`: a partition with records still to read is not idle)."""
        state = self._partitions.get(partition)
        if state is None:
            return None
        marks = []
        if state.max_event_ns is not None:
            marks.append(min(state.max_event_ns, now_ns) - self.lateness_ns)
        if caught_up and now_ns - state.last_observed_ns >= self.idle_ns:
            marks.append(now_ns - self.lateness_ns)
        return max(marks) if marks else None

    def close_due(
        self, owned: Iterable[int], now_ns: int, behind: Container[int] = ()
    ) -> tuple[list[ClosedWindow], dict[int, int]]:
        """Close every window its partition's watermark has passed, for the partitions this
        worker owns: the closed partials, and each owned partition's closed-through time.
        Partitions `behind` (records on the broker not read yet) never count as idle."""
        closed: list[ClosedWindow] = []
        marks: dict[int, int] = {}
        for partition in sorted(owned):
            state = self._partitions.get(partition)
            if state is None:
                # First sight of an assigned partition: its idle clock starts now.
                state = self._partitions[partition] = _PartitionWindows(last_observed_ns=now_ns)
            mark = self.watermark(partition, now_ns, partition not in behind)
            if mark is not None:
                through = window_start(mark, self.window_ns)
                if through > state.closed_through_ns:
                    state.closed_through_ns = through
            through = state.closed_through_ns
            for start in [s for s in state.seen if s + self.window_ns <= through]:
                del state.seen[start]
            for start in sorted(s for s in state.windows if s + self.window_ns <= through):
                end = start + self.window_ns
                for key, held in sorted(state.windows.pop(start).items()):
                    stats = window_stats(
                        np.frombuffer(held.durations, dtype=np.int64),
                        held.errors,
                        held.exemplars,
                        self.relative_accuracy,
                    )
                    closed.append(ClosedWindow(partition, start, end, key, stats))
            marks[partition] = through
        return closed, marks

    def release(self, partitions: Sequence[int]) -> None:
        """Forget partitions this worker no longer owns (their open windows go with them)."""
        for partition in partitions:
            self._partitions.pop(partition, None)

    def restart_idle_clocks(self, now_ns: int) -> None:
        """Count every partition as active now: the worker could not see its sources for a
        while (e.g. the broker was down), so quiet then says nothing about the partitions."""
        for state in self._partitions.values():
            state.last_observed_ns = max(state.last_observed_ns, now_ns)

    def reset(self) -> None:
        """Forget every partition (a rebalance: each is re-read from its committed offset)."""
        self._partitions.clear()

    def closed_through(self) -> dict[int, int]:
        """Per partition, the end before which every window is closed (unix nanos)."""
        return {p: state.closed_through_ns for p, state in sorted(self._partitions.items())}

    def open_window_count(self) -> int:
        """Open (key, window) aggregates across partitions: the stage's memory, roughly."""
        return sum(len(w) for s in self._partitions.values() for w in s.windows.values())

    def take_late(self) -> Counter[str]:
        """Late observations by service since the last call."""
        late, self.late = self.late, Counter()
        return late
