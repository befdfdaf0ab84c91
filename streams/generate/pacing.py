"""Pacing: a generator's traces handed to a sink at a steady rate of spans a second, on an
absolute schedule, with progress reports and the run's totals (RunStats)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from streams.errors import ConfigError
from streams.model.span import Span

if TYPE_CHECKING:
    from streams.generate.generator import TraceGenerator

DEFAULT_TICK_S = 0.1
DEFAULT_PROGRESS_INTERVAL_S = 5.0
DEFAULT_MAX_LAG_S = 1.0


@dataclass
class RunStats:
    """What a `run_at_rate` produced so far (a snapshot at each progress report, final at the
    end)."""

    target_spans_per_s: float
    spans: int = 0
    traces: int = 0
    error_spans: int = 0
    error_traces: int = 0
    """Traces whose root span failed."""
    elapsed_s: float = 0.0
    scheduled_s: float = 0.0
    """How far the schedule has got: the spans sent were due in the first `scheduled_s` (a
    tick's worth goes out at the start of each tick, so this runs up to a tick ahead)."""
    behind_s: float = 0.0
    """Time skipped because generating and sending could not keep up (spans never made)."""
    interrupted: bool = False
    """Ended by Ctrl-C rather than by its duration."""

    @property
    def spans_per_s(self) -> float:
        """The achieved rate (over the schedule's time when that is ahead of the clock)."""
        seconds = max(self.elapsed_s, self.scheduled_s)
        return self.spans / seconds if seconds > 0 else 0.0

    def progress_line(self) -> str:
        """One line for a progress report."""
        line = (
            f"{self.elapsed_s:7.1f} s  {self.spans:,} spans  {self.traces:,} traces  "
            f"{self.spans_per_s:,.0f} spans/s (target {self.target_spans_per_s:,.0f})  "
            f"{self.error_spans:,} error spans"
        )
        if self.behind_s:
            line += f"  {self.behind_s:.2f} s skipped: cannot keep up"
        return line

    def summary(self) -> str:
        """The final one-line summary."""
        share = 100 * self.error_traces / self.traces if self.traces else 0.0
        how = "interrupted after" if self.interrupted else "in"
        line = (
            f"generated {self.spans:,} spans in {self.traces:,} traces {how} "
            f"{self.elapsed_s:.1f} s: {self.spans_per_s:,.0f} spans/s (target "
            f"{self.target_spans_per_s:,.0f}); {self.error_spans:,} error spans, "
            f"{self.error_traces:,} failed traces ({share:.2f}%)"
        )
        if self.behind_s:
            line += f"; {self.behind_s:.2f} s skipped because it could not keep up"
        return line


def run_at_rate(
    generator: TraceGenerator,
    sink: Callable[[list[Span]], object],
    spans_per_s: float,
    duration_s: float = 0.0,
    *,
    now: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wall_clock_ns: Callable[[], int] = time.time_ns,
    on_progress: Callable[[RunStats], None] | None = None,
    progress_interval_s: float = DEFAULT_PROGRESS_INTERVAL_S,
    tick_s: float = DEFAULT_TICK_S,
    max_lag_s: float = DEFAULT_MAX_LAG_S,
    should_stop: Callable[[], bool] | None = None,
) -> RunStats:
    """Have `generator` make `spans_per_s` spans a second for `duration_s` (0: until
    `should_stop()` or Ctrl-C), handing them to `sink` once per tick; return the totals.

    Trace n starts (event time) when the spans before it are due: `wall_clock_ns()` at the
    start plus their count over the rate, so event times advance at exactly the rate. At
    each tick (every `tick_s` of `now()`) the traces due before the tick ends go to `sink`
    in one batch; the schedule is absolute, so the rate holds however long one tick takes.
    When generating and `sink` cannot keep up, the run falls behind; more than `max_lag_s`
    behind, the backlog is skipped (`behind_s`) rather than sent in a burst, and the run
    still ends at `duration_s`. `on_progress` gets a snapshot every `progress_interval_s`.
    """
    if not spans_per_s > 0:
        raise ConfigError(f"invalid spans_per_s {spans_per_s!r}; should be above 0")
    if not duration_s >= 0:
        raise ConfigError(f"invalid duration_s {duration_s!r}; should be 0 (no end) or more")
    stats = RunStats(target_spans_per_s=spans_per_s)
    start_s = now()
    origin_ns = wall_clock_ns()
    generator.origin_ns = origin_ns
    end_s = duration_s if duration_s > 0 else math.inf
    s_per_span = 1.0 / spans_per_s
    scheduled = 0  # spans on the schedule so far (those skipped when behind included)
    next_progress_s = progress_interval_s
    spans_before, errors_before = generator.spans_generated, generator.error_spans
    traces_before, failed_before = generator.traces_generated, generator.error_traces
    trace = generator.trace

    def update(elapsed_s: float) -> None:
        stats.scheduled_s = min(scheduled * s_per_span, end_s)
        stats.spans = generator.spans_generated - spans_before
        stats.traces = generator.traces_generated - traces_before
        stats.error_spans = generator.error_spans - errors_before
        stats.error_traces = generator.error_traces - failed_before
        stats.elapsed_s = elapsed_s

    try:
        while True:
            elapsed_s = now() - start_s
            due_s = scheduled * s_per_span  # when the next trace is due, after the start
            if due_s >= end_s:
                # Everything due is out; the run still lasts its duration.
                if end_s > elapsed_s:
                    sleep(end_s - elapsed_s)
                break
            # Behind schedule at the end: the duration bounds the run.
            if elapsed_s >= end_s or (should_stop is not None and should_stop()):
                break
            if due_s < elapsed_s - max_lag_s:
                skip = math.ceil((elapsed_s - max_lag_s - due_s) * spans_per_s)
                stats.behind_s += skip * s_per_span
                scheduled += skip
                due_s = scheduled * s_per_span
            # This tick's traces: those due before it ends; catching up, one tick's worth at
            # a time, so that a backlog cannot hold up the checks above.
            horizon_s = min(min(due_s, elapsed_s) + tick_s, end_s)
            batch: list[Span] = []
            while due_s < horizon_s:
                spans = trace(origin_ns + int(due_s * 1e9))
                batch += spans
                scheduled += len(spans)
                due_s = scheduled * s_per_span
            if batch:
                sink(batch)
            elapsed_s = now() - start_s
            update(elapsed_s)
            if on_progress is not None and elapsed_s >= next_progress_s:
                on_progress(RunStats(**vars(stats)))
                while next_progress_s <= elapsed_s:
                    next_progress_s += progress_interval_s
            # Sleep until the tick in which the next trace is due (none when behind); never
            # less than a thousandth of a tick, so that time always moves on. A pass that
            # sent nothing always sleeps: with float rounding, the next trace can fall just
            # past this tick's horizon while its tick's start rounds to `elapsed_s`, and the
            # loop would spin without time moving.
            wake_s = min(math.floor(due_s / tick_s) * tick_s, end_s)
            if wake_s > elapsed_s or not batch:
                sleep(max(wake_s - elapsed_s, tick_s / 1000))
    except KeyboardInterrupt:
        stats.interrupted = True
    update(now() - start_s)
    return stats
