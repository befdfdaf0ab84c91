"""The end-to-end benchmark's arithmetic: readings of a worker -> step figures and verdicts.

Pure: no Kafka, no processes, no clock. bench.end_to_end takes the readings (`Sample`) and
hands them here; tests/unit/bench/test_steps.py drives it with made-up readings.

A step offers one rate for a fixed time. It is **sustained** when both hold:

- consumed: the spans stored per second (otel_traces rows, the least-squares slope over the
  samples from `warmup_s` into the step to its end) are at least `min_consumed_share` (97%)
  of the spans offered per second over the same samples: the slope of the spans topic's end
  offsets times the step's spans per message (the generator's span count over the messages
  the step added). Measured over the same seconds, not against the generator's average over
  the whole step, because trace sizes vary: a few seconds of a low rate hold few traces, and
  their spans can be 10% above or below the average;
- lag: the worker's read lag on the spans topic (end offsets minus the messages its span
  agent has read), in seconds of the step's offered messages, has grown by at most
  `lag_allowance_s` from the first sample after the warm-up to the last. Not the committed
  lag: offsets are committed only once the latency windows their spans feed are published
  (window + allowed lateness behind), a constant delay that says nothing about keeping up.
  The allowance of 3 s covers the agent's batching and the stream buffer, not a worker that
  falls behind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

CounterSnapshot = Mapping[str, Mapping[str, int]]
"""The worker's /api/stats counters: {name: {"label=value,...": count}}."""

SPANS_STORED = ("tracepipe_sink_rows_written_total", "table=otel_traces")
"""The counter (and labels) of spans stored: the rate a step is judged by."""

STAGES: tuple[tuple[str, str, str], ...] = (
    ("spans in (span agent)", "tracepipe_spans_consumed_total", ""),
    ("spans stored (otel_traces)", *SPANS_STORED),
    ("traces emitted (assembly)", "tracepipe_traces_emitted_total", ""),
    ("trace rows stored (tracepipe_traces)", "tracepipe_sink_rows_written_total",
     "table=tracepipe_traces"),
    ("critical-path rows stored", "tracepipe_sink_rows_written_total",
     "table=tracepipe_critical_path"),
    ("latency partials sent", "tracepipe_latency_partials_sent_total", ""),
    ("latency windows emitted", "tracepipe_latency_windows_emitted_total", ""),
    ("latency windows stored", "tracepipe_latency_windows_stored_total", ""),
    ("edge partials sent", "tracepipe_edges_partials_sent_total", ""),
    ("edge windows emitted", "tracepipe_edges_windows_emitted_total", ""),
    ("edge windows stored", "tracepipe_edges_windows_stored_total", ""),
    ("origin windows stored", "tracepipe_origins_windows_stored_total", ""),
    ("span intake held back for the sweep (ms)", "tracepipe_span_intake_wait_ms_total", ""),
)  # fmt: skip
"""Per-stage rates a report shows: (label, counter, labels; "" sums every label set)."""


@dataclass(frozen=True)
class SustainRule:
    """What a step must show to count as sustained (see the module docstring)."""

    min_consumed_share: float = 0.97
    lag_allowance_s: float = 3.0
    warmup_s: float = 2.0

    def describe(self) -> str:
        """The rule in one sentence, for reports."""
        return (
            f"sustained = spans stored/s (least-squares slope of otel_traces rows from "
            f"{self.warmup_s:g} s into the step to its end) >= "
            f"{self.min_consumed_share:.0%} of the spans/s offered over the same seconds (slope "
            f"of the spans topic's end offsets x the step's spans per message), and the read lag "
            f"on the spans topic (end offsets - messages the span agent read, in seconds of the "
            f"step's messages) grew by <= {self.lag_allowance_s:g} s over the same part of the "
            f"step"
        )


@dataclass(frozen=True)
class Sample:
    """One reading of the worker: CPU, memory, its counters, the assembler's gauges, the lag."""

    at_s: float
    """Seconds on the harness's monotonic clock."""
    cpu_s: float
    rss_bytes: int
    counters: CounterSnapshot
    assembly: Mapping[str, int]
    lag_messages: int
    end_offsets: int
    """The sum of the spans topic's end offsets: messages produced so far."""


def counter_value(counters: CounterSnapshot, name: str, labels: str = "") -> int:
    """One counter's value; with `labels` "" the sum over every label set of `name`."""
    values = counters.get(name, {})
    if labels:
        return int(values.get(labels, 0))
    return sum(int(v) for v in values.values())


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of `values` by nearest rank; raises ValueError when empty."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"invalid quantile {q!r}; should be between 0 and 1")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def slope(points: Sequence[tuple[float, float]]) -> float | None:
    """The least-squares slope of (x, y) points: over time, a rate that batch-sized jumps in a
    counter swing less than first-to-last would. None without two distinct x values."""
    n = len(points)
    if n < 2:
        return None
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def held_traces(sample: Sample) -> int:
    """Traces whose spans the assembler holds: open, plus emitted and retained for late spans."""
    return sample.assembly.get("open_traces", 0) + sample.assembly.get("retained_traces", 0)


MIN_HELD_SPREAD = 1000
"""Fewer held traces' difference than this, and RSS noise would pass for memory per trace."""


def memory_per_held_trace(samples_by_step: Sequence[Sequence[Sample]]) -> float | None:
    """Bytes of RSS per held trace: the slope of RSS over held traces across the samples of
    every step but the first (in which the worker opens ClickHouse and fills its caches, growth
    that has nothing to do with traces). An upper bound: whatever else grows as the run goes on
    is counted too. None when held traces varied by less than MIN_HELD_SPREAD."""
    points = [(held_traces(s), s.rss_bytes) for step in samples_by_step[1:] for s in step]
    if not points or max(x for x, _ in points) - min(x for x, _ in points) < MIN_HELD_SPREAD:
        return None
    return slope([(float(x), float(y)) for x, y in points])


@dataclass
class StepFigures:
    """What one step measured, and the verdict."""

    offered_spans_per_s: float
    """The generator's rate over its whole run (what the step asked for, as achieved)."""
    window_offered_spans_per_s: float
    """Spans offered over the measured part of the step: what `stored_spans_per_s` is held to."""
    stored_spans_per_s: float
    lag_start_s: float
    lag_end_s: float
    cpu_us_per_span: float
    rss_bytes: int
    open_traces: int
    held_traces: int
    """Traces whose spans the assembler holds: open plus emitted-and-retained (for late spans)."""
    clickhouse_rows_per_s: float
    rows_per_s_by_table: dict[str, float]
    stage_rates: dict[str, float]
    sustained: bool
    verdict: str
    delay_after_send_p50_s: float | None = None
    delay_after_send_p99_s: float | None = None
    delay_after_end_p50_s: float | None = None
    delay_after_end_p99_s: float | None = None
    traces_measured: int = 0
    traces_reemitted: int = 0
    """Traces of the step stored in more than one version (a span came after an emission)."""

    @property
    def lag_growth_s(self) -> float:
        """How much the lag grew over the measured part of the step, in seconds of load."""
        return self.lag_end_s - self.lag_start_s


def measured_part(samples: Sequence[Sample], warmup_s: float) -> list[Sample]:
    """The samples from `warmup_s` after the first one to the last (at least the last two)."""
    if len(samples) < 2:
        raise ValueError("a step needs at least two samples")
    start = samples[0].at_s + warmup_s
    kept = [s for s in samples if s.at_s >= start]
    return kept if len(kept) >= 2 else list(samples[-2:])


def step_figures(
    generated_spans: int, generated_spans_per_s: float, samples: Sequence[Sample], rule: SustainRule
) -> StepFigures:
    """The figures of a step from its samples (taken from just before the generator started to
    just after it ended) and the generator's totals."""
    part = measured_part(samples, rule.warmup_s)
    first, last = part[0], part[-1]
    seconds = last.at_s - first.at_s
    stored = slope([(s.at_s, counter_value(s.counters, *SPANS_STORED)) for s in part]) or 0.0
    stored_delta = counter_value(last.counters, *SPANS_STORED) - counter_value(
        first.counters, *SPANS_STORED
    )
    messages_per_s = slope([(s.at_s, float(s.end_offsets)) for s in part]) or 0.0
    step_messages = samples[-1].end_offsets - samples[0].end_offsets
    spans_per_message = generated_spans / step_messages if step_messages > 0 else 1.0

    def lag_s(sample: Sample) -> float:
        # Lag in messages means little across wire formats (a message may carry many spans):
        # in seconds of the step's own production it compares across rates and formats.
        return sample.lag_messages / messages_per_s if messages_per_s > 0 else 0.0

    def rate(name: str, labels: str = "") -> float:
        delta = counter_value(last.counters, name, labels) - counter_value(
            first.counters, name, labels
        )
        return delta / seconds if seconds > 0 else 0.0

    tables = sorted(
        {
            labels.removeprefix("table=")
            for s in (first, last)
            for labels in s.counters.get("tracepipe_sink_rows_written_total", {})
        }
    )
    by_table = {t: rate("tracepipe_sink_rows_written_total", f"table={t}") for t in tables}
    figures = StepFigures(
        offered_spans_per_s=generated_spans_per_s,
        window_offered_spans_per_s=messages_per_s * spans_per_message,
        stored_spans_per_s=stored,
        lag_start_s=lag_s(first),
        lag_end_s=lag_s(last),
        cpu_us_per_span=(last.cpu_s - first.cpu_s) / stored_delta * 1e6 if stored_delta else 0.0,
        rss_bytes=last.rss_bytes,
        open_traces=last.assembly.get("open_traces", 0),
        held_traces=held_traces(last),
        clickhouse_rows_per_s=sum(by_table.values()),
        rows_per_s_by_table=by_table,
        stage_rates={label: rate(name, labels) for label, name, labels in STAGES},
        sustained=False,
        verdict="",
    )
    figures.sustained, figures.verdict = judge(figures, rule)
    return figures


def judge(figures: StepFigures, rule: SustainRule) -> tuple[bool, str]:
    """Whether a step is sustained under `rule`, and why in a few words."""
    reasons = []
    offered = figures.window_offered_spans_per_s
    if figures.stored_spans_per_s < rule.min_consumed_share * offered:
        reasons.append(
            f"stored {figures.stored_spans_per_s:,.0f}/s < {rule.min_consumed_share:.0%} of "
            f"{offered:,.0f}/s offered meanwhile"
        )
    if figures.lag_growth_s > rule.lag_allowance_s:
        reasons.append(
            f"lag grew {figures.lag_growth_s:.1f} s > {rule.lag_allowance_s:g} s "
            f"({figures.lag_start_s:.1f} -> {figures.lag_end_s:.1f} s)"
        )
    if reasons:
        return False, "not sustained: " + "; ".join(reasons)
    share = ratio(figures.stored_spans_per_s, offered) or 0.0
    return True, f"sustained: stored {share:.1%} of offered, lag grew {figures.lag_growth_s:.1f} s"


def delays_by_step(
    traces: Sequence[tuple[int, int, int]], windows: Sequence[tuple[int, int]]
) -> list[tuple[list[float], list[float]]]:
    """Emission delays per step: `traces` are (start_ns, end_ns, emitted_ns) of each trace's
    first version, `windows` each step's [start_ns, end_ns) of wall-clock time; a trace belongs
    to the step its start falls in. Returns (delays after send, delays after end) in seconds.

    The generator sends a trace's spans together in the tick its start is due (at most a tick,
    0.1 s, early), so emitted - start is the delay after the spans were sent; emitted - end is
    the delay after the last span ended, the figure for services that send spans as they end.
    """
    out: list[tuple[list[float], list[float]]] = [([], []) for _ in windows]
    for start_ns, end_ns, emitted_ns in traces:
        i = step_of(start_ns, windows)
        if i is not None:
            out[i][0].append((emitted_ns - start_ns) / 1e9)
            out[i][1].append((emitted_ns - end_ns) / 1e9)
    return out


def step_of(start_ns: int, windows: Sequence[tuple[int, int]]) -> int | None:
    """The index of the step window [start_ns, end_ns) a trace's start falls in, if any."""
    for i, (lo, hi) in enumerate(windows):
        if lo <= start_ns < hi:
            return i
    return None


def apply_delays(figures: StepFigures, after_send_s: list[float], after_end_s: list[float]) -> None:
    """Fill a step's emission-delay percentiles (left None when no trace of it was emitted)."""
    figures.traces_measured = len(after_send_s)
    if after_send_s:
        figures.delay_after_send_p50_s = percentile(after_send_s, 0.5)
        figures.delay_after_send_p99_s = percentile(after_send_s, 0.99)
        figures.delay_after_end_p50_s = percentile(after_end_s, 0.5)
        figures.delay_after_end_p99_s = percentile(after_end_s, 0.99)





def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, None when the denominator is 0."""
    return numerator / denominator if denominator else None
