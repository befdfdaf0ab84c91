"""The end-to-end benchmark's tables: a row per step, per stage, and each subject's headline
(its highest sustained step, and the highest that also kept the emission promise). Pure, like
bench/steps.py, whose figures it reads.
"""

from __future__ import annotations

from collections.abc import Sequence

from bench.steps import StepFigures, ratio


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def step_row(subject: str, figures: StepFigures) -> dict[str, str]:
    """One step as a table row (stored/offered: over the measured seconds, as judged)."""
    shared = ratio(figures.stored_spans_per_s, figures.window_offered_spans_per_s)
    return {
        "subject": subject,
        "offered spans/s": f"{figures.offered_spans_per_s:,.0f}",
        "stored spans/s": f"{figures.stored_spans_per_s:,.0f}",
        "stored/offered": f"{shared:.1%}" if shared is not None else "-",
        "sustained": "yes" if figures.sustained else "NO",
        "lag growth s": f"{figures.lag_growth_s:.1f}",
        "CPU µs/span": f"{figures.cpu_us_per_span:,.1f}",
        "RSS MiB": f"{figures.rss_bytes / 2**20:,.0f}",
        "open traces": f"{figures.open_traces:,}",
        "held traces": f"{figures.held_traces:,}",
        "delay p50 s": _seconds(figures.delay_after_send_p50_s),
        "delay p99 s": _seconds(figures.delay_after_send_p99_s),
        "re-emitted": _share(figures.traces_reemitted, figures.traces_measured),
        "CH rows/s": f"{figures.clickhouse_rows_per_s:,.0f}",
    }


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.2%}" if whole else "-"


def stage_rows(figures: StepFigures) -> list[dict[str, str]]:
    """A step's per-stage rates (and ClickHouse rows by table) as table rows."""
    rows = [
        {"stage": label, "per s": f"{value:,.1f}"} for label, value in figures.stage_rates.items()
    ]
    rows += [
        {"stage": f"ClickHouse rows: {table}", "per s": f"{value:,.1f}"}
        for table, value in figures.rows_per_s_by_table.items()
    ]
    return rows


EMISSION_ALLOWANCE_S = 2.0
"""The emission promise beyond trace_idle: every trace out within trace_idle + 2 s (p99)."""


def summary_row(
    subject: str,
    steps: Sequence[StepFigures],
    rss_per_held_trace: float | None,
    promise_s: float | None = None,
) -> dict[str, str]:
    """A subject's headline: its highest sustained step's figures, its memory per trace, and
    with `promise_s` (trace_idle + EMISSION_ALLOWANCE_S) the highest step that also kept it."""
    top = highest_sustained(steps)
    on_time = {}
    if promise_s is not None:
        kept = highest_on_time(steps, promise_s)
        on_time = {
            f"on time (p99 <= {promise_s:g} s) spans/s": (
                "none" if kept is None else f"{kept.stored_spans_per_s:,.0f}"
            )
        }
    return {
        "subject": subject,
        "highest sustained spans/s": "none" if top is None else f"{top.stored_spans_per_s:,.0f}",
        "offered": "-" if top is None else f"{top.offered_spans_per_s:,.0f}",
        "CPU µs/span": "-" if top is None else f"{top.cpu_us_per_span:,.1f}",
        "delay p50 s": _seconds(None if top is None else top.delay_after_send_p50_s),
        "delay p99 s": _seconds(None if top is None else top.delay_after_send_p99_s),
        "re-emitted": "-" if top is None else _share(top.traces_reemitted, top.traces_measured),
        "CH rows/s": "-" if top is None else f"{top.clickhouse_rows_per_s:,.0f}",
        "RSS per held trace": "-"
        if rss_per_held_trace is None
        else f"{rss_per_held_trace / 1024:,.1f} KiB",
        **on_time,
        "steps run": str(len(steps)),
    }


def highest_sustained(steps: Sequence[StepFigures]) -> StepFigures | None:
    """The sustained step with the highest stored rate, if any."""
    sustained = [s for s in steps if s.sustained]
    return max(sustained, key=lambda s: s.stored_spans_per_s) if sustained else None


def highest_on_time(steps: Sequence[StepFigures], promise_s: float) -> StepFigures | None:
    """The sustained step with the highest stored rate whose trace emission delay p99 (after
    the spans were sent) kept within `promise_s`."""
    kept = [
        s
        for s in steps
        if s.sustained
        and s.delay_after_send_p99_s is not None
        and s.delay_after_send_p99_s <= promise_s
    ]
    return max(kept, key=lambda s: s.stored_spans_per_s) if kept else None
