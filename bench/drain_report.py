"""The drain benchmark's result as text: one run in one line, a run as a table row, and the
whole result as Markdown (the figures are bench/drain_figures.py's).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bench.drain_figures import (
    STEADY_FROM,
    STEADY_TO,
)
from streams.query.table import markdown_table


def summary_line(result: Mapping[str, Any]) -> str:
    """One run in one line."""
    whole, steady = result["whole"], result["steady"] or result["whole"]
    return (
        f"{result['label']}: drained {whole['spans_per_s'] or 0:,.0f} spans/s at "
        f"{whole['worker_cpu_us_per_span'] or 0:,.1f} worker / "
        f"{whole['broker_cpu_us_per_span'] or 0:,.1f} broker CPU µs/span (steady "
        f"{steady['spans_per_s'] or 0:,.0f} rows/s at {steady['worker_cpu_us_per_span'] or 0:,.1f}"
        f"), {result['settled_cpu_us_per_span']:,.1f} µs/span until settled, "
        f"{result['versions_emitted_per_trace']:.3f} versions/trace, slowest /api/stats "
        f"{result['slowest_s']['api_stats']:.2f} s, longest loop stall "
        f"{result['longest_loop_stall_ms'] / 1e3:.2f} s"
    )


def _cell(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def result_row(result: Mapping[str, Any]) -> dict[str, str]:
    """A run as a table row."""
    # A backlog too small to have readings between 10% and 90% stored has only the whole figure.
    steady = result["steady"] or result["whole"]
    whole = result["whole"]
    return {
        "run": result["label"],
        "spans": f"{result['backlog']['spans']:,}",
        "drain spans/s": _cell(whole["spans_per_s"], 0),
        "worker µs/span": _cell(whole["worker_cpu_us_per_span"]),
        "broker µs/span": _cell(whole["broker_cpu_us_per_span"]),
        "until settled µs/span": _cell(result["settled_cpu_us_per_span"]),
        "steady rows/s (µs/row)": f"{_cell(steady['spans_per_s'], 0)} "
        f"({_cell(steady['worker_cpu_us_per_span'])})",
        "rows again": f"{result['rows_written_again']:,}",
        "generate / produce µs/span": f"{_cell(result['backlog']['generate_cpu_us_per_span'])} / "
        f"{_cell(result['backlog'].get('produce_cpu_us_per_span'))}",
        "versions/trace": f"{result['versions_emitted_per_trace']:.3f}",
        "slowest healthz/readyz/stats s": "/".join(
            f"{result['slowest_s'][k]:.2f}" for k in ("healthz", "readyz", "api_stats")
        ),
        "longest stall s": f"{result['longest_loop_stall_ms'] / 1e3:.2f}",
        "buffer-full warnings": str(result["producer_buffer_full_warnings"]),
    }


def report_markdown(summary: Mapping[str, Any]) -> str:
    """The result as Markdown."""
    parts = [
        f"`{summary['command']}`",
        f"Load average before / after: {summary['load_average_before']} / "
        f"{summary['load_average_after']}.",
        markdown_table([result_row(r) for r in summary["runs"]]),
        "drain = the backlog's spans over the seconds from the last reading before the first "
        "span was stored to the reading with every row written; worker and broker µs/span over "
        "the same seconds (worker = every worker process, utime + stime; broker = the process "
        "listening on the bootstrap port: other clients of a shared broker count too). Until "
        "settled: worker CPU until every trace was emitted and stored, per span. steady = rows "
        f"written between {STEADY_FROM:.0%} and {STEADY_TO:.0%} of the final rows; rows again = "
        "rows written twice (spans re-read after a rebalance). versions/trace = trace versions "
        "emitted / traces generated. slowest = the slowest answer of /healthz, /readyz (every "
        "worker, probed every --sample-s) and /api/stats (the harness's readings) during the "
        "drain; stall = the longest event-loop stall (streams/worker/loop_lag.py) during the "
        "drain.",
    ]
    for run in summary["runs"]:
        backlog = run["backlog"]
        parts.append(
            f"{run['label']}: backlog {backlog['spans']:,} spans / {backlog['traces']:,} traces, "
            f"produced at {backlog.get('produce_cpu_us_per_span', 0):.1f} CPU µs/span "
            f"(SpanProducer) after generating at {backlog['generate_cpu_us_per_span']:.1f}; "
            f"workers answering {run['start_s']} s after spawn, "
            f"{run['stored_at_first_reading']:,} spans already stored then, the first stored "
            f"{run['first_stored_after_s']} s later; every trace emitted and stored "
            f"{run['settled_s']} s after the drain's start, at "
            f"{run['settled_cpu_us_per_span']:.1f} worker CPU µs/span over that time; stores: "
            f"{json.dumps(run['store'])}; probe failures {run['probe_failures']}."
        )
    ratios = summary.get("two_over_one")
    if ratios:
        parts.append(
            f"Two workers over one: {_cell(ratios['spans_per_s'], 2)}x the drain rate, "
            f"{_cell(ratios['worker_cpu_us_per_span'], 2)}x the worker CPU per span."
        )
    return "\n\n".join(parts)
