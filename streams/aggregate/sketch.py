"""The latency sketch of a window: a DDSketch of span durations in nanoseconds.

Percentiles cannot be averaged: the p99 of an hour is not the mean of its minutes' p99s. A
DDSketch is mergeable (the bins of two sketches add up to the sketch of both data sets, in any
order, across windows, partitions and ClickHouse rows) and guarantees a relative error: every
quantile it reports is within `relative_accuracy` of a value actually at that rank. So windows
ship their bins, and every coarser percentile is computed from merged bins, never from
percentiles.

The aggregation stage folds a batch's durations into a sketch with one vectorized call
(`add_many`): numpy computes the bin keys of the whole batch exactly as ddsketch's own mapping
would, and each distinct key costs one store add.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypedDict

import numpy as np
import numpy.typing as npt
from ddsketch.ddsketch import BaseDDSketch
from ddsketch.mapping import LogarithmicMapping
from ddsketch.store import DenseStore

_LN2 = math.log(2.0)

_INT64_MAX_LOG2 = 63.0
"""log2 of the largest int64 duration: bounds the magnitude of a key before the ceiling."""

_LOG_SLACK = 1e-10
"""Relative distance from a bin boundary inside which numpy's key is not trusted.

numpy's SIMD log may differ from libm's (which ddsketch's math.log uses) by a few ulp, about
1e-15 relative; values that close to a boundary could land in the neighbouring bin. They are
keyed by ddsketch itself instead: about one value in a million at 1% accuracy."""

_VECTORIZE_FROM = 24
"""Batch size from which add_many computes keys with numpy; smaller batches go one by one.

numpy's dozen calls cost about 25 us whatever the batch size, ddsketch's own key and store add
about 0.7 us per value: they break even near 20 values on the machines we measured."""

_BINCOUNT_SPAN_PER_VALUE = 16
"""Largest key span per value that add_many tallies with a dense bincount rather than a sort."""


class SketchRecord(TypedDict):
    """The Avro LatencySketch record (schemas/avro/latency.avsc): sparse bins, keys ascending."""

    relative_accuracy: float
    zero_count: float
    keys: list[int]
    counts: list[float]


# ddsketch has no public way to add counts that are already binned (its add() computes the key
# of every value with math.log) and does not expose its mapping's log multiplier. These two
# functions are the only places that touch its private attributes; the tests that compare
# add_many's keys with mapping.key and add_many's quantiles with add's guard them.


def _log2_multiplier(mapping: LogarithmicMapping) -> float:
    """The factor ddsketch's LogarithmicMapping applies to log2(value) before the ceiling."""
    return float(mapping._multiplier)


def _count_binned(sketch: BaseDDSketch, weight: float) -> None:
    """Keep the sketch's total in step with counts added straight to its store."""
    sketch._count += weight


class LatencySketch:
    """A mergeable DDSketch of durations in ns (LogarithmicMapping, unbounded dense store).

    Only the bins are kept: the wrapped sketch's sum/min/max are not maintained by add_many
    and not exposed; windows keep exact ones themselves and hand min/max to `quantile`.
    """

    __slots__ = ("_boundary_slack", "_mapping", "_multiplier", "_sketch", "_store")

    def __init__(self, relative_accuracy: float = 0.01) -> None:
        """An empty sketch whose quantiles are within `relative_accuracy` (0 < it < 1)."""
        if not 0.0 < relative_accuracy < 1.0:
            raise ValueError(
                f"invalid relative_accuracy {relative_accuracy!r}: should be between 0 and 1, "
                "exclusive (0.01 means percentiles within 1%)"
            )
        self._mapping = LogarithmicMapping(relative_accuracy)
        # Our own reference to the store the sketch fills: add_many adds binned counts to it.
        self._store = DenseStore()
        self._sketch = BaseDDSketch(
            mapping=self._mapping, store=self._store, negative_store=DenseStore(), zero_count=0.0
        )
        self._multiplier = _log2_multiplier(self._mapping)
        self._boundary_slack = _LOG_SLACK * _INT64_MAX_LOG2 * self._multiplier

    @property
    def relative_accuracy(self) -> float:
        """The relative error bound of every quantile (0.01 = 1%)."""
        return float(self._mapping.relative_accuracy)

    @property
    def count(self) -> float:
        """Total weight: the number of durations added, zeros included."""
        return float(self._sketch.count)

    def add(self, duration_ns: int) -> None:
        """Add one duration; for many at once, add_many is far cheaper."""
        if duration_ns < 0:
            raise ValueError(f"negative duration {duration_ns} ns: spans must end after they start")
        self._sketch.add(duration_ns)

    def add_many(self, durations_ns: Sequence[int] | npt.NDArray[np.integer]) -> None:
        """Add a batch of durations with one vectorized key computation and one add per bin."""
        if not isinstance(durations_ns, np.ndarray) and len(durations_ns) < _VECTORIZE_FROM:
            self._add_each(durations_ns)
            return
        values = np.asarray(durations_ns)
        if values.size == 0:
            return
        if values.dtype.kind not in "iu":
            raise TypeError(f"durations must be integer nanoseconds (int64), got {values.dtype}")
        values = values.ravel()
        if values.size < _VECTORIZE_FROM:
            self._add_each(values.tolist())
            return
        lowest = int(values.min())
        if lowest < 0:
            raise ValueError(f"negative duration {lowest} ns: spans must end after they start")
        positive = values[values > 0] if lowest == 0 else values
        zeros = values.size - positive.size
        if zeros:
            self._sketch.add(0, float(zeros))
        if positive.size == 0:
            return
        keys = self._keys(positive)
        lowest = int(keys.min())
        span = int(keys.max()) - lowest + 1
        if span <= _BINCOUNT_SPAN_PER_VALUE * keys.size + 1024:
            tally = np.bincount(keys - lowest)
            present = np.flatnonzero(tally)
            distinct, counts = present + lowest, tally[present]
        else:
            # A very fine accuracy spreads a few values over many keys: sort instead of tally.
            distinct, counts = np.unique(keys, return_counts=True)
        bin_keys = distinct.tolist()
        weights = counts.astype(np.float64).tolist()
        add = self._store.add
        # Highest key first, then ascending: the store resizes its bins at most once, where
        # ascending alone re-centers them again and again as the keys climb.
        add(bin_keys[-1], weights[-1])
        for key, weight in zip(bin_keys[:-1], weights[:-1], strict=True):
            add(key, weight)
        _count_binned(self._sketch, float(positive.size))

    def _add_each(self, durations_ns: Sequence[int]) -> None:
        """Add a few durations one at a time: for small batches numpy's call overhead dominates."""
        if not durations_ns:
            return
        lowest = min(durations_ns)
        if lowest < 0:
            raise ValueError(f"negative duration {lowest} ns: spans must end after they start")
        key = self._mapping.key
        add = self._store.add
        zeros = 0
        for duration in durations_ns:
            if duration:
                add(key(duration), 1.0)
            else:
                zeros += 1
        if zeros:
            self._sketch.add(0, float(zeros))
        _count_binned(self._sketch, float(len(durations_ns) - zeros))

    def _keys(self, positive: npt.NDArray[np.integer]) -> npt.NDArray[np.intp]:
        """The bin key of each positive duration, equal to ddsketch's mapping.key(duration)."""
        # Same operations in the same order as LogarithmicMapping.key: math.log(v, 2) is
        # log(v) / log(2), and float(v) rounds an int64 the way numpy's cast does.
        scaled = np.log(positive.astype(np.float64))
        scaled /= _LN2
        scaled *= self._multiplier
        ceiling = np.ceil(scaled)
        gap = ceiling - scaled
        slack = self._boundary_slack
        doubtful = np.flatnonzero((gap <= slack) | (gap >= 1.0 - slack))
        keys = ceiling.astype(np.intp)
        if doubtful.size:
            key = self._mapping.key
            keys[doubtful] = [key(v) for v in positive[doubtful].tolist()]
        return keys

    def merge(self, other: LatencySketch) -> None:
        """Fold another sketch into this one; both must have the same relative accuracy."""
        if other.relative_accuracy != self.relative_accuracy:
            raise ValueError(
                f"cannot merge a sketch of relative_accuracy {other.relative_accuracy} into one "
                f"of {self.relative_accuracy}: their bins differ; use one aggregation "
                "relative_accuracy everywhere"
            )
        self._sketch.merge(other._sketch)

    def quantile(self, q: float, observed: tuple[float, float] | None = None) -> float:
        """The duration in ns at quantile q (0 <= q <= 1); 0.0 for an empty sketch.

        Interpolated between the values ranked floor and ceil of q * (count - 1), like numpy's
        default (linear) percentile; each is within the relative accuracy, so the result is
        too. (ddsketch's own get_quantile_value answers the lower one, numpy's method="lower".)
        `observed` is the exact (min, max) of the durations added, where the caller keeps them:
        the answer is clamped into it, since a bin's value can lie up to the relative accuracy
        beyond every duration in the bin (all calls 100 ms would read p99 100.5 ms otherwise).
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"invalid quantile {q!r}: should be between 0 and 1 (0.99 = p99)")
        count = float(self._sketch.count)
        if count == 0:
            return 0.0
        rank = q * (count - 1)
        below = math.floor(rank)
        lower = self._value_at_rank(below)
        fraction = rank - below
        value = lower
        if fraction != 0.0:
            value = lower + (self._value_at_rank(below + 1) - lower) * fraction
        if observed is None:
            return value
        lowest, highest = observed
        return min(max(value, float(lowest)), float(highest))

    def _value_at_rank(self, rank: float) -> float:
        """The bin value of the duration ranked `rank` (0-based, zeros first)."""
        zeros = self._sketch.count - self._store.count
        if rank < zeros:
            return 0.0
        return float(self._mapping.value(self._store.key_at_rank(rank - zeros)))

    def to_record(self) -> SketchRecord:
        """The sketch as its Avro record: non-empty bins only, keys ascending."""
        store = self._store
        offset = store.offset
        bins = store.bins
        present = [i for i, weight in enumerate(bins) if weight]
        return {
            "relative_accuracy": self.relative_accuracy,
            # Weights are whole numbers held in floats, so the difference is exact.
            "zero_count": float(self._sketch.count - store.count),
            "keys": [i + offset for i in present],
            "counts": [float(bins[i]) for i in present],
        }

    @classmethod
    def from_record(cls, record: SketchRecord) -> LatencySketch:
        """The sketch an Avro LatencySketch record holds."""
        return cls.from_bins(
            record["relative_accuracy"], record["zero_count"], record["keys"], record["counts"]
        )

    @classmethod
    def from_bins(
        cls,
        relative_accuracy: float,
        zero_count: float,
        keys: Sequence[int],
        counts: Sequence[float],
    ) -> LatencySketch:
        """A sketch from bins, e.g. ClickHouse's sumMap(SketchKeys, SketchCounts) over a range."""
        if len(keys) != len(counts):
            raise ValueError(
                f"sketch bins differ in length: {len(keys)} keys, {len(counts)} counts"
            )
        if zero_count < 0 or any(c < 0 for c in counts):
            raise ValueError("sketch bin counts must not be negative")
        sketch = cls(relative_accuracy)
        store = sketch._store
        pairs = [(int(k), float(c)) for k, c in zip(keys, counts, strict=True) if c]
        if pairs:
            # Highest key first, then ascending: the store resizes its bins at most once.
            pairs.sort()
            store.add(*pairs[-1])
            for key, weight in pairs[:-1]:
                store.add(key, weight)
        # The sketch computes its total from the stores it is given: no private state touched.
        sketch._sketch = BaseDDSketch(
            mapping=sketch._mapping,
            store=store,
            negative_store=DenseStore(),
            zero_count=float(zero_count),
        )
        return sketch
