"""bench.early_emission: with each service's spans arriving apart, traces go out whole and
once; with early emission off, none goes out before idle."""

from __future__ import annotations

from bench.early_emission import arrivals, run


def test_spans_arriving_apart_still_make_one_whole_version_per_trace() -> None:
    events = arrivals(traces=2_000, rate=100.0, max_delay_s=3.0, seed=3)
    figures = run(events, sweep_s=0.25, learn_s=8.0, early=True)
    assert figures["traces_measured"] > 1_000
    assert figures["emitted_whole_share"] == 1.0
    assert figures["reemitted_share"] == 0.0
    # Out at the first sweep after the last part arrived, not trace_idle (5 s) after it.
    assert figures["delay_after_last_span_p99_s"] <= 0.25


def test_with_early_emission_off_every_trace_waits_for_idle() -> None:
    events = arrivals(traces=1_000, rate=100.0, max_delay_s=1.0, seed=3)
    figures = run(events, sweep_s=0.25, learn_s=0.0, early=False)
    assert figures["emitted_whole_share"] == 0.0
    assert figures["delay_after_last_span_p50_s"] >= 5.0
