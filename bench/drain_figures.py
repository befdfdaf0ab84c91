"""The drain benchmarks' arithmetic: readings of the consumers -> drain rate, CPU per span.

Pure: no Kafka, no processes, no clock. bench.drain and bench.collector take the readings and
hand them here; tests/unit/bench/test_drain.py drives it with made-up readings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.steps import CounterSnapshot, counter_value
from streams.errors import TracepipeError

STEADY_FROM, STEADY_TO = 0.1, 0.9
FEW_READINGS = 10
"""A drain seen by fewer readings than this has coarse figures (the stored counters move in
insert batches of thousands): the benchmarks say so and ask for a larger backlog."""
"""The share of the backlog stored between which the steady drain rate is measured."""


@dataclass(frozen=True)
class Reading:
    """One reading of the whole group: summed counters and CPU, the broker's CPU."""

    at_s: float
    at_unix_s: float
    stored_spans: int
    """Spans done: stored in otel_traces (every worker), or accepted by the Collector."""
    worker_cpu_s: float
    """CPU seconds of the consumer processes (the workers, or the Collector)."""
    broker_cpu_s: float | None
    counters: CounterSnapshot
    open_traces: int


def merged_counters(snapshots: Sequence[CounterSnapshot]) -> dict[str, dict[str, int]]:
    """The counters of several workers added up, label set by label set."""
    out: dict[str, dict[str, int]] = {}
    for snapshot in snapshots:
        for name, values in snapshot.items():
            into = out.setdefault(name, {})
            for labels, value in values.items():
                into[labels] = into.get(labels, 0) + int(value)
    return out


def stored(reading: Reading) -> int:
    """Spans done so far."""
    return reading.stored_spans


def drain_start(readings: Sequence[Reading]) -> Reading:
    """The last reading before spans started to be stored (the first one if they already were):
    start-up (joining the group, opening the store) is left out of the whole drain."""
    start = readings[0]
    for reading in readings[1:]:
        if stored(reading) > stored(readings[0]):
            break
        start = reading
    return start


def traces_settled(reading: Reading) -> bool:
    """No trace open and every emitted trace version stored."""
    emitted = counter_value(reading.counters, "tracepipe_traces_emitted_total")
    rows = counter_value(
        reading.counters, "tracepipe_sink_rows_written_total", "table=tracepipe_traces"
    )
    return reading.open_traces == 0 and rows >= emitted


def first_reaching(readings: Sequence[Reading], spans: float) -> Reading | None:
    """The first reading with at least `spans` stored."""
    return next((r for r in readings if stored(r) >= spans), None)


def span_figures(
    first: Reading, last: Reading, spans: int | None = None
) -> dict[str, float | None]:
    """Spans/s and CPU µs per span (worker, broker) between two readings; `spans` by default
    the rows stored between them."""
    if spans is None:
        spans = stored(last) - stored(first)
    seconds = last.at_s - first.at_s
    broker = (
        None
        if first.broker_cpu_s is None or last.broker_cpu_s is None
        else (last.broker_cpu_s - first.broker_cpu_s) / spans * 1e6
        if spans
        else None
    )
    return {
        "spans": spans,
        "seconds": seconds,
        "spans_per_s": spans / seconds if seconds > 0 else None,
        "worker_cpu_us_per_span": (last.worker_cpu_s - first.worker_cpu_s) / spans * 1e6
        if spans
        else None,
        "broker_cpu_us_per_span": broker,
    }


def drain_figures(readings: Sequence[Reading], backlog_spans: int) -> dict[str, Any]:
    """Steady (rows between 10% and 90% of the rows finally written) and whole (the backlog,
    from the drain's start to the last rows written) figures; raises TracepipeError when the
    readings never reach the whole backlog.

    Rows and spans differ when spans are read again (after a rebalance, a worker re-reads what
    the previous owner had not committed): the steady figures count rows, the whole figures
    count each span of the backlog once.
    """
    final = stored(readings[-1]) if readings else 0
    if final < backlog_spans:
        raise TracepipeError(
            f"the readings never reach {backlog_spans:,} spans stored (last: {final:,})"
        )
    done = first_reaching(readings, final)
    low = first_reaching(readings, STEADY_FROM * final)
    high = first_reaching(readings, STEADY_TO * final)
    assert done is not None and low is not None and high is not None  # final is reached
    start = drain_start(readings)
    return {
        "steady": span_figures(low, high) if high.at_s > low.at_s else None,
        "whole": span_figures(start, done, backlog_spans - min(stored(start), backlog_spans)),
        "readings_in_drain": sum(1 for r in readings if start.at_s <= r.at_s <= done.at_s),
        "rows_written": final,
        "rows_written_again": final - backlog_spans,
        "stored_at_first_reading": stored(readings[0]),
        "first_stored_after_s": round(drain_start(readings).at_s - readings[0].at_s, 2),
    }


def coarse_warning(figures: Mapping[str, Any]) -> str | None:
    """A line saying the drain was too short to measure well, or None."""
    readings = int(figures["readings_in_drain"])
    if readings >= FEW_READINGS:
        return None
    return (
        f"only {readings} readings during the drain: the figures are coarse; load a larger "
        "backlog (--spans)"
    )


def settled_cpu_us_per_span(start: Reading, settled: Reading, total: int) -> float:
    """Consumer CPU per span from the drain's start until everything was done (for tracepipe,
    every trace emitted and stored; for the Collector, every trace decided)."""
    return (settled.worker_cpu_s - start.worker_cpu_s) / max(1, total - stored(start)) * 1e6


def longest_stall_ms(
    stalls: Mapping[tuple[int, float], float], since_unix_s: float, until_unix_s: float
) -> float:
    """The longest event-loop stall (ms) that ended within [since, until]; stalls keyed by
    (worker index, wall-clock time the loop woke)."""
    during = [ms for (_, at), ms in stalls.items() if since_unix_s <= at <= until_unix_s]
    return max(during, default=0.0)
