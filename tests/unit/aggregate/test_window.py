"""WindowAggregator: event-time windows per partition, watermarks, lateness, idle partitions."""

from __future__ import annotations

from streams.aggregate.window import Observation, WindowAggregator, window_start

MS = 1_000_000
S = 1_000 * MS
T0 = 1_700_000_000 * S  # a 10 s boundary
NOW = T0 + 100 * S  # the worker's wall clock: past the event times of these tests


def aggregator(lateness_ms: int = 5_000, idle_ms: int = 60_000, k: int = 2) -> WindowAggregator:
    return WindowAggregator(
        window_ms=10_000,
        allowed_lateness_ms=lateness_ms,
        partition_idle_ms=idle_ms,
        relative_accuracy=0.01,
        exemplar_count=k,
    )


def obs(
    end_ns: int, duration_ns: int, service: str = "cart", error: bool = False, n: int = 0
) -> Observation:
    return Observation(
        end_ns, duration_ns, (service, "GET", "SERVER", "ok"), error, f"t{n}", f"s{n}"
    )


def test_windows_are_aligned_to_the_epoch() -> None:
    assert window_start(T0 + 3 * S, 10 * S) == T0
    assert window_start(T0 + 10 * S, 10 * S) == T0 + 10 * S
    assert window_start(T0 - 1, 10 * S) == T0 - 10 * S


def test_a_window_closes_only_when_the_watermark_passes_its_end() -> None:
    agg = aggregator(lateness_ms=5_000)
    agg.add(0, [obs(T0 + 1 * S, 5 * MS), obs(T0 + 12 * S, 7 * MS)], now_ns=NOW)
    closed, marks = agg.close_due([0], now_ns=NOW)
    # watermark = T0 + 12 s - 5 s = T0 + 7 s: the first window (ends T0 + 10 s) stays open.
    assert closed == [] and marks == {0: T0}
    agg.add(0, [obs(T0 + 15 * S, 9 * MS)], now_ns=NOW)
    closed, marks = agg.close_due([0], now_ns=NOW)
    assert [(c.window_start_unix_nano, c.stats.count) for c in closed] == [(T0, 1)]
    assert marks == {0: T0 + 10 * S}


def test_stats_are_exact_and_exemplars_are_the_slowest() -> None:
    agg = aggregator(lateness_ms=0, k=2)
    durations = [30, 10, 50, 20, 40]
    agg.add(0, [obs(T0 + i * MS, d * MS, error=d == 20, n=d) for i, d in enumerate(durations)], NOW)
    agg.add(0, [obs(T0 + 100 * MS, 45 * MS, n=45)], NOW)  # a second batch merges in
    agg.add(0, [obs(T0 + 20 * S, 1)], NOW)
    closed, _ = agg.close_due([0], NOW)
    stats = closed[0].stats
    assert (stats.count, stats.errors) == (6, 1)
    assert stats.sum_ns == 195 * MS and stats.min_ns == 10 * MS and stats.max_ns == 50 * MS
    assert [(e.duration_ns, e.trace_id) for e in stats.exemplars] == [
        (50 * MS, "t50"),
        (45 * MS, "t45"),
    ]
    assert stats.sketch.count == 6


def test_spans_for_a_closed_window_are_late_counted_per_service_and_not_folded() -> None:
    agg = aggregator(lateness_ms=0)
    agg.add(0, [obs(T0 + 1 * S, 1 * MS), obs(T0 + 11 * S, 1 * MS)], NOW)
    closed, _ = agg.close_due([0], NOW)
    assert len(closed) == 1
    late = agg.add(
        0, [obs(T0 + 2 * S, 1 * MS, service="payment"), obs(T0 + 12 * S, 1 * MS)], NOW
    ).late
    assert late == 1
    assert agg.take_late() == {"payment": 1}
    assert agg.take_late() == {}
    agg.add(0, [obs(T0 + 25 * S, 1)], NOW)
    closed, _ = agg.close_due([0], NOW)
    assert [c.stats.count for c in closed] == [2]  # the window [T0+10, T0+20): two spans


def test_partitions_keep_their_own_watermarks() -> None:
    agg = aggregator(lateness_ms=0)
    agg.add(0, [obs(T0 + 1 * S, 1)], NOW)
    agg.add(1, [obs(T0 + 35 * S, 1)], NOW)
    closed, marks = agg.close_due([0, 1], NOW)
    assert marks == {0: T0, 1: T0 + 30 * S}
    assert [c.source_partition for c in closed] == []  # partition 1's only window is still open
    late = agg.add(0, [obs(T0 + 2 * S, 1)], NOW).late
    assert late == 0  # partition 1 running ahead does not make partition 0's spans late


def test_an_idle_partition_moves_its_watermark_with_wall_clock() -> None:
    agg = aggregator(lateness_ms=5_000, idle_ms=30_000)
    agg.add(0, [obs(T0 + 1 * S, 1)], now_ns=T0 + 2 * S)
    closed, _ = agg.close_due([0], now_ns=T0 + 20 * S)
    assert closed == []  # not idle yet, and the event watermark is T0 - 4 s
    closed, marks = agg.close_due([0], now_ns=T0 + 40 * S)
    assert [c.window_start_unix_nano for c in closed] == [T0]
    assert marks == {0: T0 + 30 * S}  # wall clock (T0 + 40 s) - lateness, floored to a window


def test_an_owned_partition_without_spans_reports_a_watermark_once_idle() -> None:
    agg = aggregator(lateness_ms=5_000, idle_ms=30_000)
    _, marks = agg.close_due([3], now_ns=T0)
    assert marks == {3: 0}  # its idle clock starts when first seen
    _, marks = agg.close_due([3], now_ns=T0 + 31 * S)
    assert marks == {3: window_start(T0 + 26 * S, 10 * S)}


def test_release_forgets_partitions_and_their_open_windows() -> None:
    agg = aggregator()
    agg.add(0, [obs(T0, 1)], NOW)
    agg.add(1, [obs(T0, 1)], NOW)
    assert agg.open_window_count() == 2
    agg.release([1])
    assert agg.open_window_count() == 1


def test_restarted_idle_clocks_keep_a_cut_off_partition_open() -> None:
    agg = WindowAggregator(10_000, 0, 2_000, 0.01, 3)
    agg.add(0, [obs(T0 + 1 * S, 1)], T0 + 1 * S)
    # Cut off for a minute: without a restart the idle rule closes everything up to now.
    agg.restart_idle_clocks(T0 + 61 * S)
    closed, marks = agg.close_due([0], T0 + 62 * S)
    assert closed == [] and marks == {0: T0}  # only its own event time: nothing closed
    late = agg.add(0, [obs(T0 + 30 * S, 1, n=1)], T0 + 62 * S).late
    assert late == 0  # produced while cut off, arriving now: still on time
    closed, _ = agg.close_due([0], T0 + 64 * S)  # idle again for 2 s: now it closes
    assert [c.stats.count for c in closed] == [1, 1]


def test_a_partition_with_records_left_to_read_is_never_idle() -> None:
    agg = WindowAggregator(10_000, 0, 2_000, 0.01, 3)
    agg.add(0, [obs(T0 + 1 * S, 1)], T0 + 1 * S)
    # Quiet for a minute but behind (a backlog after a rebalance or outage): nothing closes.
    closed, _ = agg.close_due([0], T0 + 61 * S, behind={0})
    assert closed == []
    assert agg.add(0, [obs(T0 + 5 * S, 1, n=1)], T0 + 61 * S).late == 0
    closed, _ = agg.close_due([0], T0 + 64 * S)  # caught up and idle: closes
    assert [c.stats.count for c in closed] == [2]


def test_events_ahead_of_wall_clock_move_the_watermark_only_up_to_wall_clock() -> None:
    # One service's clock three minutes ahead shares partition 0 with correct clocks.
    agg = aggregator(lateness_ms=5_000)
    ahead = T0 + 180 * S
    agg.add(0, [obs(T0 + 1 * S, 1, n=1), obs(ahead + 1 * S, 1, service="payment", n=2)], T0 + 2 * S)
    closed, marks = agg.close_due([0], now_ns=T0 + 3 * S)
    assert closed == [] and marks == {0: T0 - 10 * S}  # wall clock - lateness, not ahead - lateness
    late = agg.add(0, [obs(T0 + 4 * S, 1, n=3)], T0 + 4 * S).late
    assert late == 0  # the correct clocks' spans stay on time
    closed, _ = agg.close_due([0], now_ns=T0 + 16 * S)
    assert [(c.key[0], c.stats.count) for c in closed] == [("cart", 2)]
    # The ahead service's window closes once wall clock has passed it by the lateness.
    closed, _ = agg.close_due([0], now_ns=ahead + 15 * S)
    assert [(c.key[0], c.window_start_unix_nano) for c in closed] == [("payment", ahead)]
