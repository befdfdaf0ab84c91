"""LatencySketch: exact ddsketch keys from numpy, relative accuracy of windows and merged ranges."""

from __future__ import annotations

import io
import json
import math
from collections import Counter
from typing import Any, cast

import fastavro
import numpy as np
import numpy.typing as npt
import pytest
from ddsketch import DDSketch, LogarithmicMapping

from streams.aggregate.sketch import LatencySketch, SketchRecord
from streams.aggregate.stats import WindowStats, window_stats
from streams.paths import schemas_root

QUANTILES = (0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0)
FLOAT_SLACK = 1e-9
"""Relative slack on the accuracy bound: at a bin's edge the error is exactly the bound."""


def exact_quantile(sorted_values: npt.NDArray[np.int64], q: float) -> float:
    """The exact percentile as numpy computes it by default (linear interpolation)."""
    return float(np.quantile(sorted_values, q))


def assert_accurate(sketch: LatencySketch, values: npt.NDArray[np.int64], what: str) -> None:
    ordered = np.sort(values)
    assert sketch.count == len(values), what
    bound = sketch.relative_accuracy * (1 + FLOAT_SLACK)
    for q in (0.5, 0.9, 0.99):
        exact = exact_quantile(ordered, q)
        got = sketch.quantile(q)
        assert abs(got - exact) <= bound * exact, f"{what} p{q * 100:g}: {got} vs exact {exact}"


def mixed_durations(rng: np.random.Generator, n: int) -> npt.NDArray[np.int64]:
    """n durations in ns, in time order: lognormal, then bimodal, then a heavy (Pareto) tail."""
    third = n // 3
    lognormal = rng.lognormal(math.log(2e6), 0.8, third)
    slow = rng.random(third) < 0.2
    bimodal = np.where(
        slow, rng.lognormal(math.log(5e8), 0.4, third), rng.lognormal(math.log(1e6), 0.3, third)
    )
    pareto = (rng.pareto(1.5, n - 2 * third) + 1.0) * 2e5
    in_time_order = np.concatenate([lognormal, bimodal, pareto])
    durations: npt.NDArray[np.int64] = np.rint(in_time_order).astype(np.int64)
    return durations


def sum_bins(records: list[SketchRecord]) -> LatencySketch:
    """Merge sketches the way ClickHouse's sumMap(SketchKeys, SketchCounts) does, then rebuild."""
    bins: Counter[int] = Counter()
    zero_count = 0.0
    for record in records:
        bins.update(dict(zip(record["keys"], record["counts"], strict=True)))
        zero_count += record["zero_count"]
    keys = sorted(bins)
    return LatencySketch.from_bins(
        records[0]["relative_accuracy"], zero_count, keys, [bins[k] for k in keys]
    )


def test_windows_and_merged_hour_are_within_one_percent() -> None:
    rng = np.random.default_rng(20_240_605)
    durations = mixed_durations(rng, 1_000_000)
    windows = np.array_split(durations, 360)
    sketches = []
    for window in windows:
        sketch = LatencySketch(0.01)
        sketch.add_many(window)
        sketches.append(sketch)

    # Windows from each distribution, and 119/239 which straddle two of them.
    for i in (0, 60, 119, 150, 200, 239, 240, 300, 359):
        assert_accurate(sketches[i], windows[i], f"window {i}")

    merged = LatencySketch(0.01)
    for sketch in sketches:
        merged.merge(sketch)
    assert_accurate(merged, durations, "hour via merge")
    summed = sum_bins([s.to_record() for s in sketches])
    assert_accurate(summed, durations, "hour via summed bins")

    # Bins add up exactly: both merges are the sketch of the whole hour, bin for bin.
    whole = LatencySketch(0.01)
    whole.add_many(durations)
    assert merged.to_record() == summed.to_record() == whole.to_record()


@pytest.mark.parametrize("relative_accuracy", [0.01, 0.02, 0.001, 0.05])
def test_numpy_keys_are_ddsketch_keys(relative_accuracy: float) -> None:
    mapping = LogarithmicMapping(relative_accuracy)
    rng = np.random.default_rng(7)
    # Integers on either side of every bin boundary gamma**k up to 10**15 ns.
    top = math.ceil(math.log(1e15, mapping.gamma))
    edges = np.array([mapping.gamma**k for k in range(top + 1)])
    near_edges = (np.floor(edges).astype(np.int64)[:, None] + np.arange(-1, 3)).ravel()
    values = np.concatenate(
        [
            np.arange(1, 20_001),
            near_edges[near_edges > 0],
            np.exp(rng.uniform(0, math.log(1e15), 200_000)).astype(np.int64) + 1,
            [10**15, 2**53 - 1, 2**53, 2**53 + 1, 2**62, 2**63 - 1],
        ]
    ).astype(np.int64)
    sketch = LatencySketch(relative_accuracy)
    sketch.add_many(values)

    want = Counter(mapping.key(v) for v in values.tolist())
    record = sketch.to_record()
    assert record["keys"] == sorted(want)
    assert record["counts"] == [float(want[k]) for k in sorted(want)]


def integers_at_bin_edges(mapping: LogarithmicMapping) -> npt.NDArray[np.int64]:
    """Integers beside every bin boundary up to int64's largest: where a key hangs on an ulp."""
    near: set[int] = set()
    for k in range(mapping.key(2**63 - 1) + 1):
        # value(k) is the bin's representative, 2 / (1 + gamma) of its upper boundary.
        below = above = mapping.value(k) * (1 + mapping.gamma) / 2
        for _ in range(4):
            near.update((math.floor(below), math.floor(below) + 1, math.floor(above) + 1))
            below, above = math.nextafter(below, 0.0), math.nextafter(above, math.inf)
    return np.array(sorted(v for v in near if 0 < v < 2**63), dtype=np.int64)


@pytest.mark.parametrize("ulps", [-3, 3])
def test_keys_hold_when_numpy_log_is_a_few_ulp_off(
    monkeypatch: pytest.MonkeyPatch, ulps: int
) -> None:
    # numpy's SIMD log may differ from libm's in the last bits on another CPU; values that
    # close to a bin boundary must still get ddsketch's key.
    mapping = LogarithmicMapping(0.01)
    values = integers_at_bin_edges(mapping)
    real_log = np.log

    def skewed_log(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        result: npt.NDArray[np.float64] = real_log(x)
        for _ in range(abs(ulps)):
            result = np.nextafter(result, math.copysign(math.inf, ulps))
        return result

    monkeypatch.setattr(np, "log", skewed_log)
    sketch = LatencySketch(0.01)
    sketch.add_many(values)
    monkeypatch.undo()

    want = Counter(mapping.key(v) for v in values.tolist())
    record = sketch.to_record()
    assert record["keys"] == sorted(want)
    assert record["counts"] == [float(want[k]) for k in sorted(want)]


def test_add_many_equals_ddsketch_add() -> None:
    rng = np.random.default_rng(11)
    values = mixed_durations(rng, 30_000)
    values[::97] = 0
    reference = DDSketch(0.01)
    one_by_one = LatencySketch(0.01)
    for v in values.tolist():
        reference.add(v)
        one_by_one.add(v)
    vectorized = LatencySketch(0.01)
    vectorized.add_many(values)

    assert vectorized.count == one_by_one.count == reference.count == len(values)
    for q in QUANTILES:
        assert vectorized.quantile(q) == one_by_one.quantile(q), q
    # Where q * (count - 1) is a whole rank there is nothing to interpolate: ddsketch's answer.
    last = len(values) - 1
    for rank in (0, 1, last // 4, last // 2, last - 7, last):
        want = reference.get_quantile_value(rank / last)
        assert vectorized.quantile(rank / last) == pytest.approx(want, rel=1e-9), rank
    assert vectorized.to_record() == one_by_one.to_record()


def test_batch_size_does_not_change_the_sketch() -> None:
    rng = np.random.default_rng(3)
    values = mixed_durations(rng, 5_000)
    values[::50] = 0
    whole = LatencySketch()
    whole.add_many(values)
    pieces = LatencySketch()
    start = 0
    # Sizes on both sides of the switch from one-by-one to vectorized, as arrays and lists.
    for size in (1, 2, 5, 23, 24, 25, 100, 1000):
        pieces.add_many(values[start : start + size])
        start += size
        pieces.add_many(values[start : start + size].tolist())
        start += size
    pieces.add_many(values[start:])
    assert pieces.to_record() == whole.to_record()


def test_empty_sketch() -> None:
    sketch = LatencySketch()
    sketch.add_many([])
    sketch.add_many(np.array([], dtype=np.int64))
    assert sketch.count == 0.0
    assert [sketch.quantile(q) for q in (0.0, 0.5, 1.0)] == [0.0, 0.0, 0.0]
    record = sketch.to_record()
    assert record == {"relative_accuracy": 0.01, "zero_count": 0.0, "keys": [], "counts": []}
    assert LatencySketch.from_record(record).quantile(0.5) == 0.0


def test_zero_durations_go_to_the_zero_count() -> None:
    sketch = LatencySketch()
    sketch.add(0)
    sketch.add_many([0, 0])
    sketch.add_many(np.zeros(40, dtype=np.int64))
    sketch.add_many(np.array([0] * 20 + [1_000] * 50, dtype=np.int64))
    record = sketch.to_record()
    assert record["zero_count"] == 63.0
    assert record["counts"] == [50.0]
    assert sketch.count == 113.0
    assert sketch.quantile(0.5) == 0.0
    assert sketch.quantile(0.99) == pytest.approx(1_000, rel=0.01)


def test_merge_adds_counts_and_rejects_other_accuracy() -> None:
    a, b = LatencySketch(0.01), LatencySketch(0.01)
    a.add_many([1_000] * 30)
    b.add_many([9_000] * 70)
    a.merge(b)
    assert a.count == 100.0
    assert a.quantile(0.1) == pytest.approx(1_000, rel=0.01)
    assert a.quantile(0.9) == pytest.approx(9_000, rel=0.01)
    with pytest.raises(ValueError, match="relative_accuracy"):
        a.merge(LatencySketch(0.02))


def test_record_round_trip_through_avro() -> None:
    named: dict[str, Any] = {}
    schema = json.loads((schemas_root() / "avro" / "latency.avsc").read_text())
    fastavro.parse_schema(schema, named_schemas=named)
    sketch_schema = named["io.tracepipe.v1.LatencySketch"]

    rng = np.random.default_rng(5)
    sketch = LatencySketch()
    sketch.add_many(np.append(mixed_durations(rng, 3_000), [0, 0]))
    record = sketch.to_record()
    assert record["keys"] == sorted(record["keys"]) and 0.0 not in record["counts"]
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, sketch_schema, dict(record))
    buffer.seek(0)
    decoded = cast(SketchRecord, fastavro.schemaless_reader(buffer, sketch_schema, None))

    back = LatencySketch.from_record(decoded)
    assert back.to_record() == record
    assert back.count == sketch.count
    assert [back.quantile(q) for q in QUANTILES] == [sketch.quantile(q) for q in QUANTILES]


def test_from_bins_accepts_summap_output() -> None:
    a, b = LatencySketch(), LatencySketch()
    a.add_many([0, 5, 5_000, 5_000_000])
    b.add_many([5_000, 7_000_000])
    ra, rb = a.to_record(), b.to_record()
    # Unsorted, with a zero-count bin, as a hand-written query might hand them over.
    keys = rb["keys"][::-1] + ra["keys"] + [123]
    counts = rb["counts"][::-1] + ra["counts"] + [0.0]
    summed = LatencySketch.from_bins(0.01, ra["zero_count"] + rb["zero_count"], keys, counts)
    a.merge(b)
    assert summed.to_record() == a.to_record()


@pytest.mark.parametrize(
    ("keys", "counts"), [([1, 2], [1.0]), ([1], [-1.0])], ids=["lengths", "negative"]
)
def test_from_bins_rejects_bad_bins(keys: list[int], counts: list[float]) -> None:
    with pytest.raises(ValueError, match="sketch bin"):
        LatencySketch.from_bins(0.01, 0.0, keys, counts)


def test_quantile_interpolates_between_ranks_like_numpy() -> None:
    # numpy's default (linear) p50 of [100, 200] is 150; ddsketch alone answers the lower value.
    sketch = LatencySketch()
    sketch.add_many([100, 200])
    assert float(np.quantile([100, 200], 0.5)) == 150.0
    assert sketch.quantile(0.5) == pytest.approx(150, rel=0.01)
    assert sketch.quantile(0.25) == pytest.approx(125, rel=0.01)
    assert sketch.quantile(1.0) == pytest.approx(200, rel=0.01)


def test_quantiles_are_clamped_to_the_observed_min_and_max() -> None:
    # Every call 100 ms: the bin's value is 100.99 ms, more than any call took.
    sketch = LatencySketch()
    sketch.add_many([100 * 1_000_000] * 50)
    assert sketch.quantile(0.99) > 100 * 1_000_000
    observed = (100 * 1_000_000, 100 * 1_000_000)
    assert [sketch.quantile(q, observed) for q in QUANTILES] == [100 * 1_000_000] * len(QUANTILES)
    # 101 ms reads 100.99 ms: below every call, so it is raised to the min.
    low = LatencySketch()
    low.add_many([101 * 1_000_000] * 50)
    assert low.quantile(0.5) < 101 * 1_000_000
    assert low.quantile(0.5, (101 * 1_000_000, 101 * 1_000_000)) == 101 * 1_000_000
    # Inside the bounds nothing changes.
    wide = LatencySketch()
    wide.add_many(list(range(1_000, 100_000, 7)))
    assert wide.quantile(0.5, (1_000, 99_999)) == wide.quantile(0.5)


def test_window_stats_quantiles_stay_within_their_min_and_max() -> None:
    stats = window_stats([100 * 1_000_000] * 30 + [40 * 1_000_000] * 3, 0, [], 0.01)
    assert stats.quantile(0.99) == stats.max_ns == 100 * 1_000_000
    assert stats.min_ns == 40 * 1_000_000 <= stats.quantile(0.0) <= 40.4 * 1_000_000
    assert WindowStats(sketch=LatencySketch()).quantile(0.5) == 0.0


@pytest.mark.parametrize("q", [-0.01, 1.01, math.nan, math.inf])
def test_bad_quantile_raises(q: float) -> None:
    sketch = LatencySketch()
    sketch.add(10)
    with pytest.raises(ValueError, match="quantile"):
        sketch.quantile(q)


@pytest.mark.parametrize("relative_accuracy", [0.0, 1.0, -0.01, 2.0, math.nan])
def test_bad_relative_accuracy_raises(relative_accuracy: float) -> None:
    with pytest.raises(ValueError, match="relative_accuracy"):
        LatencySketch(relative_accuracy)


@pytest.mark.parametrize("size", [1, 10, 1_000], ids=["one", "few", "many"])
def test_negative_durations_raise_and_add_nothing(size: int) -> None:
    sketch = LatencySketch()
    durations = np.full(size, 1_000, dtype=np.int64)
    durations[-1] = -1
    with pytest.raises(ValueError, match="negative duration"):
        sketch.add_many(durations)
    with pytest.raises(ValueError, match="negative duration"):
        sketch.add_many(durations.tolist())
    with pytest.raises(ValueError, match="negative duration"):
        sketch.add(-1)
    assert sketch.count == 0.0 and sketch.to_record()["keys"] == []


def test_non_integer_durations_are_refused() -> None:
    with pytest.raises(TypeError, match="integer nanoseconds"):
        LatencySketch().add_many(np.full(100, 1.5))
