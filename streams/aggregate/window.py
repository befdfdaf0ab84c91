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

A batch is folded as arrays (`ObservationBatch`; latency's straight from the span columns):
windows, lateness and grouping by window and key are numpy passes, and per observation only its
identity is checked against the window's (a redelivery counts once). Durations are kept raw
(8 bytes each) per window and key until the window closes, and only then folded into its sketch
with one vectorized call; the slowest exemplars are picked per batch, their ids made only then.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from streams.aggregate.stats import Exemplar, WindowStats, slowest, window_stats

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


@dataclass(frozen=True)
class ObservationBatch:
    """A batch of observations as arrays, the form `WindowAggregator.add` folds: keys as
    indexes into `keys`, exemplar ids only for the rows that become exemplars."""

    end_ns: npt.NDArray[np.int64]
    duration_ns: npt.NDArray[np.int64]
    key_index: npt.NDArray[np.intp]
    keys: Sequence[WindowKey]
    error: npt.NDArray[np.bool_]
    identity: npt.NDArray[np.int64]
    """Equal for equal observations (a redelivered span): each counts once per window."""
    ids: Callable[[npt.NDArray[np.intp]], list[tuple[str, str]]]
    """(trace id, span id) of the given rows."""

    @classmethod
    def of(cls, observations: Iterable[Observation]) -> ObservationBatch:
        """The batch of observations one by one (service-graph calls, tests)."""
        items = list(observations)
        index: dict[WindowKey, int] = {}
        n = len(items)
        return cls(
            np.fromiter((o.end_time_unix_nano for o in items), np.int64, n),
            np.fromiter((o.duration_ns for o in items), np.int64, n),
            np.fromiter((index.setdefault(o.key, len(index)) for o in items), np.intp, n),
            list(index),
            np.fromiter((o.error for o in items), np.bool_, n),
            np.fromiter((hash(o) for o in items), np.int64, n),
            lambda rows: [(items[r].trace_id, items[r].span_id) for r in rows.tolist()],
        )

    def observations(self) -> list[Observation]:
        """The batch one observation at a time (for checks that count them)."""
        ids = self.ids(np.arange(len(self.end_ns), dtype=np.intp))
        keys = [self.keys[k] for k in self.key_index.tolist()]
        return [
            Observation(end, duration, key, error, trace_id, span_id)
            for end, duration, key, error, (trace_id, span_id) in zip(
                self.end_ns.tolist(),
                self.duration_ns.tolist(),
                keys,
                self.error.tolist(),
                ids,
                strict=True,
            )
        ]


def window_start(time_unix_nano: int, window_ns: int) -> int:
    """Start of the epoch-aligned window holding `time_unix_nano`."""
    return time_unix_nano - time_unix_nano % window_ns


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

    def add(
        self,
        partition: int,
        observations: ObservationBatch | Iterable[Observation],
        now_ns: int,
    ) -> Folded:
        """Fold one batch of a partition's observations, each identical observation once per
        window."""
        batch = (
            observations
            if isinstance(observations, ObservationBatch)
            else ObservationBatch.of(observations)
        )
        state = self._partitions.get(partition)
        if state is None:
            state = self._partitions[partition] = _PartitionWindows()
        state.last_observed_ns = now_ns
        window_ns = self.window_ns
        ends = batch.end_ns
        starts = ends - ends % window_ns
        is_open = starts + window_ns > state.closed_through_ns
        open_rows = np.flatnonzero(is_open)
        late = len(ends) - len(open_rows)
        if late:
            keys = batch.keys
            self.late.update(keys[k][0] for k in batch.key_index[~is_open].tolist())
        fresh, duplicates = self._unseen(state, open_rows, starts[open_rows], batch.identity)
        if not fresh:
            return Folded(late, duplicates, 0)
        rows = np.array(fresh, dtype=np.intp)
        starts = starts[rows]
        max_end = int(ends[rows].max())
        if state.max_event_ns is None or max_end > state.max_event_ns:
            state.max_event_ns = max_end
        # Group by (window, key), slowest first within each group.
        window_starts, window_of = np.unique(starts, return_inverse=True)
        group = window_of.reshape(-1) * len(batch.keys) + batch.key_index[rows]
        durations = batch.duration_ns[rows]
        order = np.lexsort((-durations, group))
        group = group[order]
        firsts = np.flatnonzero(np.concatenate(([True], group[1:] != group[:-1])))
        lasts = np.append(firsts[1:], len(order))
        durations = durations[order]
        errors = np.add.reduceat(batch.error[rows][order].astype(np.int64), firsts).tolist()
        k = self.exemplar_count
        bounds = list(zip(firsts.tolist(), lasts.tolist(), strict=True))
        picked = np.concatenate([order[a : min(a + k, b)] for a, b in bounds]) if k else order[:0]
        ids = iter(batch.ids(rows[picked]))
        starts_list, keys = window_starts.tolist(), batch.keys
        for g, first, last, error_count in zip(
            group[firsts].tolist(), firsts.tolist(), lasts.tolist(), errors, strict=True
        ):
            start = starts_list[g // len(keys)]
            key = keys[g % len(keys)]
            window = state.windows.get(start)
            if window is None:
                window = state.windows[start] = {}
            held = window.get(key)
            if held is None:
                held = window[key] = _OpenWindow()
            held.durations.frombytes(durations[first:last].tobytes())
            held.errors += error_count
            if k:
                # The group's first rows are its slowest, the ones `picked` took ids for.
                slow = durations[first : min(first + k, last)].tolist()
                mine = [Exemplar(duration, *next(ids)) for duration in slow]
                held.exemplars = slowest(held.exemplars + mine, k)
        return Folded(late, duplicates, int(window_starts[-1]) + window_ns)

    @staticmethod
    def _unseen(
        state: _PartitionWindows,
        rows: npt.NDArray[np.intp],
        starts: npt.NDArray[np.int64],
        identity: npt.NDArray[np.int64],
    ) -> tuple[list[int], int]:
        # The rows whose identity the window has not folded yet (and now has), and how many
        # were duplicates. A batch spans a few windows: one set lookup per row.
        fresh: list[int] = []
        duplicates = 0
        for start in np.unique(starts).tolist():
            mine = rows[starts == start]
            seen = state.seen.get(start)
            if seen is None:
                seen = state.seen[start] = set()
            for row, key in zip(mine.tolist(), identity[mine].tolist(), strict=True):
                if key in seen:
                    duplicates += 1
                else:
                    seen.add(key)
                    fresh.append(row)
        return fresh, duplicates

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
