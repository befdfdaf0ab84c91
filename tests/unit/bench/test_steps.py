"""The end-to-end benchmark's arithmetic on made-up readings: rates from batch-sized counter
jumps, the sustained-step verdict, emission delays per step, memory per held trace, the py-spy
summary and the report tables."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bench.py_spy import profile_summary, short_file
from bench.step_report import highest_on_time, highest_sustained, stage_rows, step_row, summary_row
from bench.steps import (
    Sample,
    StepFigures,
    SustainRule,
    counter_value,
    delays_by_step,
    memory_per_held_trace,
    percentile,
    slope,
    step_figures,
)

RULE = SustainRule(min_consumed_share=0.97, lag_allowance_s=3.0, warmup_s=2.0)


def readings(
    stored_per_s: float,
    seconds: int = 20,
    batch: int = 500,
    lag_s: Callable[[float], float] = lambda t: 1.0,
    offered: Callable[[int], int] = lambda t: 1000 * t,
    cpu_per_span_s: float = 400e-6,
    held: Callable[[int], int] = lambda t: 1000,
    rss: Callable[[int], int] = lambda held: 300 * 2**20,
) -> list[Sample]:
    """One reading a second of a worker that stores `stored_per_s`, in whole batches, while
    `offered(t)` spans (one per message) have been produced by second t."""
    samples = []
    for t in range(seconds + 1):
        stored = int(stored_per_s * t) // batch * batch
        samples.append(
            Sample(
                at_s=100.0 + t,
                cpu_s=stored * cpu_per_span_s,
                rss_bytes=rss(held(t)),
                counters={
                    "tracepipe_sink_rows_written_total": {
                        "table=otel_traces": stored,
                        "table=tracepipe_traces": stored // 10,
                    },
                    "tracepipe_traces_emitted_total": {
                        "completion=complete": stored // 10 - 3,
                        "completion=idle_no_root": 3,
                    },
                },
                assembly={"open_traces": held(t) // 2, "retained_traces": held(t) - held(t) // 2},
                lag_messages=int(lag_s(t) * (offered(seconds) - offered(seconds - 1))),
                end_offsets=offered(t),
            )
        )
    return samples


def test_counter_value_by_labels_or_summed() -> None:
    counters = {"c": {"table=a": 3, "table=b": 4}}
    assert counter_value(counters, "c", "table=b") == 4
    assert counter_value(counters, "c") == 7
    assert counter_value(counters, "missing") == 0
    assert counter_value(counters, "c", "table=z") == 0


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # 100..1, unsorted on purpose
    assert percentile(values, 0.5) == 51.0
    assert percentile(values, 0.99) == 100.0
    assert percentile(values, 0.0) == 1.0
    assert percentile([7.0], 0.99) == 7.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        percentile(values, 99)


def test_slope_sees_the_rate_through_batch_jumps() -> None:
    # 1,000/s stored in batches of 500: first-to-last over 7.5 s would say 933/s or 1,067/s
    # depending on where the batches fall; the fitted slope stays close.
    points = [(t / 2, float(int(1000 * t / 2) // 500 * 500)) for t in range(1, 17)]
    fitted = slope(points)
    assert fitted is not None and fitted == pytest.approx(1000, rel=0.05)
    assert slope([(0.0, 1.0), (2.0, 5.0)]) == 2.0
    assert slope([(1.0, 1.0)]) is None
    assert slope([(1.0, 1.0), (1.0, 9.0)]) is None


def test_a_worker_that_keeps_up_is_sustained() -> None:
    # Lag saw-tooths with the commit interval (up to 2.8 s) but does not grow.
    figures = step_figures(20_000, 1000.0, readings(1000.0, lag_s=lambda t: (t % 3) * 0.9), RULE)
    assert figures.sustained, figures.verdict
    assert figures.verdict.startswith("sustained: stored")
    assert figures.stored_spans_per_s == pytest.approx(1000, rel=0.03)
    assert figures.cpu_us_per_span == pytest.approx(400, rel=0.01)
    assert figures.clickhouse_rows_per_s == pytest.approx(1100, rel=0.05)
    assert set(figures.rows_per_s_by_table) == {"otel_traces", "tracepipe_traces"}
    assert figures.stage_rates["traces emitted (assembly)"] == pytest.approx(100, rel=0.1)


def test_storing_less_than_97_percent_is_not_sustained() -> None:
    figures = step_figures(20_000, 1000.0, readings(940.0), RULE)
    assert not figures.sustained
    assert figures.stored_spans_per_s == pytest.approx(940, rel=0.01)
    assert "< 97% of 1,000/s offered meanwhile" in figures.verdict
    assert "lag grew" not in figures.verdict


def test_growing_lag_is_not_sustained_even_at_the_rate() -> None:
    figures = step_figures(20_000, 1000.0, readings(1000.0, lag_s=lambda t: 0.5 + 0.3 * t), RULE)
    assert not figures.sustained
    assert figures.lag_growth_s == pytest.approx(0.3 * 18, abs=0.01)  # from t=2 to t=20
    assert "lag grew 5.4 s > 3 s" in figures.verdict


def test_stored_is_held_to_what_was_offered_over_the_same_seconds() -> None:
    # Big traces early in the step: 3,000 spans/s for two seconds, then 1,000/s. The
    # generator's average (1,200/s) is not what the measured part offered.
    def offered(t: int) -> int:
        return 3000 * t if t <= 2 else 6000 + 1000 * (t - 2)

    figures = step_figures(24_000, 1200.0, readings(1000.0, offered=offered), RULE)
    assert figures.offered_spans_per_s == 1200.0
    assert figures.window_offered_spans_per_s == pytest.approx(1000)
    assert figures.sustained, figures.verdict


def test_messages_carrying_many_spans_count_as_their_spans() -> None:
    # Ten spans a message (a batching producer): 100 messages/s are 1,000 spans/s.
    def offered(t: int) -> int:
        return 100 * t

    kept_up = step_figures(20_000, 1000.0, readings(1000.0, offered=offered), RULE)
    assert kept_up.window_offered_spans_per_s == pytest.approx(1000)
    assert kept_up.sustained and kept_up.lag_start_s == pytest.approx(1.0)
    behind = step_figures(20_000, 1000.0, readings(940.0, offered=offered), RULE)
    assert not behind.sustained


def test_the_warm_up_is_left_out() -> None:
    samples = readings(1000.0)
    # The previous step's tail lands in the first two seconds: a burst that must not count.
    burst = {"tracepipe_sink_rows_written_total": {"table=otel_traces": 50_000}}
    for i in (0, 1):
        samples[i] = Sample(
            samples[i].at_s, 0.0, samples[i].rss_bytes, burst, samples[i].assembly, 0, 0
        )
    shifted = [
        Sample(
            s.at_s,
            s.cpu_s,
            s.rss_bytes,
            {
                "tracepipe_sink_rows_written_total": {
                    "table=otel_traces": 50_000
                    + counter_value(
                        s.counters, "tracepipe_sink_rows_written_total", "table=otel_traces"
                    )
                }
            },
            s.assembly,
            s.lag_messages,
            s.end_offsets,
        )
        for s in samples[2:]
    ]
    figures = step_figures(20_000, 1000.0, samples[:2] + shifted, RULE)
    assert figures.stored_spans_per_s == pytest.approx(1000, rel=0.03)
    with pytest.raises(ValueError, match="two samples"):
        step_figures(20_000, 1000.0, samples[:1], RULE)


def test_delays_are_bucketed_by_the_step_a_trace_started_in() -> None:
    s = 1_000_000_000
    windows = [(100 * s, 110 * s), (110 * s, 120 * s)]
    traces = [
        (101 * s, 102 * s, 107 * s),  # step 0: 6 s after send, 5 s after end
        (109 * s, 109 * s, 115 * s),  # step 0
        (110 * s, 111 * s, 118 * s),  # step 1 (a window's start is in it)
        (99 * s, 99 * s, 105 * s),  # the warm-up: in no step
        (120 * s, 120 * s, 126 * s),  # after the last step: in none
    ]
    (send0, end0), (send1, end1) = delays_by_step(traces, windows)
    assert send0 == [6.0, 6.0] and end0 == [5.0, 6.0]
    assert send1 == [8.0] and end1 == [7.0]


def test_memory_per_held_trace_skips_the_first_step() -> None:
    def rss(held: int) -> int:
        return 400 * 2**20 + 6000 * held

    first = readings(1000.0, held=lambda t: 100 * t, rss=lambda held: 2**30)  # ClickHouse opens
    second = readings(1000.0, held=lambda t: 2000 + 200 * t, rss=rss)
    third = readings(1000.0, held=lambda t: 6000 + 300 * t, rss=rss)
    assert memory_per_held_trace([first, second, third]) == pytest.approx(6000)
    assert memory_per_held_trace([first]) is None
    flat = readings(1000.0, held=lambda t: 50 + t, rss=lambda held: 2**28 + 2**20 * held)
    assert memory_per_held_trace([first, flat]) is None  # 20 traces apart: noise, not memory


REPO = Path("/work/tp")
SITE = "/venv/lib/python3.11/site-packages"
STDLIB = "/usr/lib/python3.11"
ENTRY = f"<module> ({REPO}/streams/__main__.py:5);main ({REPO}/streams/cli/__init__.py:51)"
LOOP = f"run_until_complete ({STDLIB}/asyncio/base_events.py:10)"
PROFILE = f"""\
{ENTRY};{LOOP};span_sink ({REPO}/streams/worker/sink.py:80);decode ({REPO}/streams/model/codec.py:96) 30
{ENTRY};{LOOP};Topic.publish_message ({SITE}/faust/topics.py:400);send ({SITE}/aiokafka/client.py:5) 50
Thread._bootstrap ({STDLIB}/threading.py:1002);WarehouseWriter._insert ({REPO}/streams/sink/writer.py:70);send_insert ({SITE}/chdb/state/sqlitelike.py:9) 20
not a stack line
"""  # noqa: E501


def test_short_file_starts_at_the_package() -> None:
    assert short_file(f"{SITE}/aiokafka/conn.py", REPO) == "aiokafka/conn.py"
    assert short_file(f"{STDLIB}/asyncio/events.py", REPO) == "asyncio/events.py"
    assert short_file(f"{REPO}/streams/aggregate/window.py", REPO) == "streams/aggregate/window.py"
    assert short_file("<frozen runpy>", REPO) == "<frozen runpy>"


def test_profile_summary_shares() -> None:
    summary = profile_summary(PROFILE, repository=REPO)
    assert summary["self"][0] == ("send (aiokafka/client.py)", 0.5)
    assert dict(summary["self_by_package"]) == {"aiokafka": 0.5, "streams": 0.3, "chdb": 0.2}
    ours = dict(summary["streams_total"])
    # The entry points under every stack are left out; the stages' functions stay.
    assert ours == {
        "span_sink (streams/worker/sink.py)": 0.3,
        "decode (streams/model/codec.py)": 0.3,
        "WarehouseWriter._insert (streams/sink/writer.py)": 0.2,
    }
    assert profile_summary("") == {"self": [], "self_by_package": [], "streams_total": []}


def figures(offered: float, stored: float, sustained: bool) -> StepFigures:
    return StepFigures(
        offered_spans_per_s=offered,
        window_offered_spans_per_s=offered,
        stored_spans_per_s=stored,
        lag_start_s=0.5,
        lag_end_s=1.25,
        cpu_us_per_span=432.15,
        rss_bytes=512 * 2**20,
        open_traces=1234,
        held_traces=56789,
        clickhouse_rows_per_s=2345.6,
        rows_per_s_by_table={"otel_traces": 2000.0},
        stage_rates={"spans in (span agent)": 2000.04},
        sustained=sustained,
        verdict="",
        delay_after_send_p50_s=6.012,
        delay_after_send_p99_s=7.5,
        traces_measured=4000,
        traces_reemitted=13,
    )


def test_step_and_stage_rows() -> None:
    row = step_row("pipeline", figures(2000.0, 1999.6, True))
    assert row == {
        "subject": "pipeline",
        "offered spans/s": "2,000",
        "stored spans/s": "2,000",
        "stored/offered": "100.0%",
        "sustained": "yes",
        "lag growth s": "0.8",
        "CPU µs/span": "432.1",
        "RSS MiB": "512",
        "open traces": "1,234",
        "held traces": "56,789",
        "delay p50 s": "6.01",
        "delay p99 s": "7.50",
        "re-emitted": "0.33%",
        "CH rows/s": "2,346",
    }
    assert step_row("naive", figures(100.0, 50.0, False))["sustained"] == "NO"
    assert stage_rows(figures(1.0, 1.0, True)) == [
        {"stage": "spans in (span agent)", "per s": "2,000.0"},
        {"stage": "ClickHouse rows: otel_traces", "per s": "2,000.0"},
    ]


def test_summary_row_is_the_highest_sustained_step() -> None:
    steps = [figures(1000.0, 990.0, True), figures(2000.0, 1990.0, True)]
    steps.append(figures(4000.0, 3000.0, False))
    top = highest_sustained(steps)
    assert top is steps[1]
    row = summary_row("pipeline", steps, 33.0 * 1024)
    assert row["highest sustained spans/s"] == "1,990" and row["offered"] == "2,000"
    assert row["RSS per held trace"] == "33.0 KiB" and row["steps run"] == "3"
    none = summary_row("naive", [figures(100.0, 10.0, False)], None)
    assert none["highest sustained spans/s"] == "none" and none["delay p99 s"] == "-"
    assert highest_sustained([]) is None


def test_on_time_is_the_highest_sustained_step_within_the_emission_promise() -> None:
    steps = [figures(1000.0, 990.0, True), figures(2000.0, 1990.0, True)]
    steps[0].delay_after_send_p99_s = 6.5
    steps[1].delay_after_send_p99_s = 7.01
    steps.append(figures(4000.0, 3990.0, False))
    steps[2].delay_after_send_p99_s = 6.0  # on time, but not sustained
    assert highest_on_time(steps, 7.0) is steps[0]
    assert highest_on_time(steps, 7.5) is steps[1]
    steps[0].delay_after_send_p99_s = None  # no trace of it emitted
    assert highest_on_time(steps, 7.0) is None
    row = summary_row("pipeline", steps, None, 7.0)
    assert row["on time (p99 <= 7 s) spans/s"] == "none"
    assert row["highest sustained spans/s"] == "1,990"
