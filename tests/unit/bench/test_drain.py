"""The drain and Collector benchmarks' arithmetic (bench/drain_figures.py) on made-up readings:
where the drain starts, steady and whole rates, CPU per span, loop stalls inside the drain,
Prometheus sums."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.collector import missing_collector_line, prometheus_sum
from bench.drain_figures import (
    Reading,
    coarse_warning,
    drain_figures,
    drain_start,
    longest_stall_ms,
    merged_counters,
    settled_cpu_us_per_span,
    traces_settled,
)
from streams.errors import TracepipeError


def reading(at_s: float, stored: int, cpu_s: float, broker_s: float | None = 0.0) -> Reading:
    return Reading(
        at_s=at_s,
        at_unix_s=1_000.0 + at_s,
        stored_spans=stored,
        worker_cpu_s=cpu_s,
        broker_cpu_s=broker_s,
        counters={},
        open_traces=0,
    )


# Start-up (nothing stored for 2 s), then 1,000 spans/s at 0.5 ms CPU per span, batch jumps.
READINGS = [
    reading(0.0, 0, 1.0, 10.0),
    reading(1.0, 0, 2.0, 10.0),
    reading(2.0, 0, 3.0, 10.0),
    reading(3.0, 1000, 3.5, 10.1),
    reading(4.0, 2000, 4.0, 10.2),
    reading(5.0, 3000, 4.5, 10.3),
    reading(6.0, 4000, 5.0, 10.4),
    reading(7.0, 5000, 5.5, 10.5),
]


def test_the_drain_starts_just_before_the_first_span_is_stored() -> None:
    assert drain_start(READINGS).at_s == 2.0
    # Spans stored before the first reading: the drain starts at the first reading.
    assert drain_start(READINGS[3:]).at_s == 3.0


def test_steady_and_whole_figures() -> None:
    figures = drain_figures(READINGS, 5000)
    steady, whole = figures["steady"], figures["whole"]
    # Steady: from the first reading with 10% (500) stored to the first with 90% (4,500).
    assert (steady["spans"], steady["seconds"]) == (4000, 4.0)
    assert steady["spans_per_s"] == pytest.approx(1000.0)
    assert steady["worker_cpu_us_per_span"] == pytest.approx(500.0)
    assert steady["broker_cpu_us_per_span"] == pytest.approx(100.0)
    # Whole: start-up left out, from just before the first span to the last.
    assert (whole["spans"], whole["seconds"]) == (5000, 5.0)
    assert figures["first_stored_after_s"] == 2.0


def test_no_broker_pid_means_no_broker_figure() -> None:
    readings = [reading(r.at_s, r.stored_spans, r.worker_cpu_s, None) for r in READINGS]
    assert drain_figures(readings, 5000)["steady"]["broker_cpu_us_per_span"] is None


def test_readings_short_of_the_backlog_are_an_error() -> None:
    with pytest.raises(TracepipeError, match="never reach 6,000"):
        drain_figures(READINGS, 6000)


def test_cpu_until_settled_counts_every_span_after_the_start() -> None:
    settled = reading(12.0, 5000, 8.0)
    assert settled_cpu_us_per_span(READINGS[2], settled, 5000) == pytest.approx(1000.0)


def test_counters_of_workers_add_up() -> None:
    merged = merged_counters(
        [
            {"rows": {"table=otel_traces": 10, "table=tracepipe_traces": 1}},
            {"rows": {"table=otel_traces": 5}, "emitted": {"": 2}},
        ]
    )
    assert merged == {
        "rows": {"table=otel_traces": 15, "table=tracepipe_traces": 1},
        "emitted": {"": 2},
    }


def test_traces_settle_when_none_is_open_and_every_version_is_stored() -> None:
    def with_counts(open_traces: int, emitted: int, rows: int) -> Reading:
        counters = {
            "tracepipe_traces_emitted_total": {"": emitted},
            "tracepipe_sink_rows_written_total": {"table=tracepipe_traces": rows},
        }
        return Reading(0.0, 0.0, 0, 0.0, None, counters, open_traces)

    assert traces_settled(with_counts(0, 10, 10))
    assert not traces_settled(with_counts(1, 10, 10))
    assert not traces_settled(with_counts(0, 10, 9))


def test_only_stalls_within_the_drain_count() -> None:
    stalls = {(0, 999.0): 9000.0, (0, 1003.0): 800.0, (1, 1004.5): 1200.0, (1, 1010.0): 5000.0}
    assert longest_stall_ms(stalls, 1002.0, 1007.0) == 1200.0
    assert longest_stall_ms(stalls, 1005.0, 1006.0) == 0.0


def test_prometheus_sums_every_label_set_of_one_metric() -> None:
    text = "\n".join(
        [
            "# HELP otelcol_receiver_accepted_spans Number of spans accepted.",
            'otelcol_receiver_accepted_spans{receiver="kafka",transport="kafka"} 1500',
            'otelcol_receiver_accepted_spans{receiver="otlp",transport="grpc"} 25',
            'otelcol_receiver_accepted_spans_total{receiver="kafka"} 99',
            "otelcol_receiver_refused_spans 3",
        ]
    )
    assert prometheus_sum(text, "otelcol_receiver_accepted_spans") == 1525.0
    assert prometheus_sum(text, "otelcol_receiver_refused_spans") == 3.0
    assert prometheus_sum(text, "otelcol_missing") == 0.0


def test_a_missing_collector_is_one_line_naming_the_build() -> None:
    line = missing_collector_line(Path("/nowhere/otelcol"))
    assert "\n" not in line
    assert "/nowhere/otelcol" in line and "build.sh" in line


def test_rows_read_again_count_once_in_the_whole_drain() -> None:
    # Two workers: a rebalance made one re-read 1,000 spans the other had stored.
    readings = [*READINGS, reading(8.0, 6000, 6.0)]
    figures = drain_figures(readings, 5000)
    assert figures["rows_written"] == 6000
    assert figures["rows_written_again"] == 1000
    whole = figures["whole"]
    assert (whole["spans"], whole["seconds"]) == (5000, 6.0)
    assert whole["worker_cpu_us_per_span"] == pytest.approx((6.0 - 3.0) / 5000 * 1e6)


def test_a_drain_seen_by_few_readings_is_called_coarse() -> None:
    figures = drain_figures(READINGS, 5000)
    assert figures["readings_in_drain"] == 6
    assert "larger backlog" in (coarse_warning(figures) or "")
    many = [reading(i * 0.5, min(5000, i * 250), i * 0.1) for i in range(30)]
    assert coarse_warning(drain_figures(many, 5000)) is None
