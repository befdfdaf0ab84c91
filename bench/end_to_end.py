"""End-to-end benchmark: one worker on the real broker at increasing rates, and a naive baseline.

For each rate in turn (a step of --step-s seconds), `tracepipe generate --rate R` runs in a
process of its own (the web-shop load users generate, through the SDK's SpanProducer in whatever
wire format it writes), while the harness reads the worker process every --sample-s: CPU from
/proc (user + system), RSS, its /api/stats counters and assembler gauges, and the consumer
group's lag on the spans topic. The ladder stops after the first step that is not sustained
(rule printed at the start; see bench/steps.py). After the last step the worker drains, stops,
and the harness reads tracepipe_traces for each step's trace emission delay p50/p99.

With --baseline naive the same ladder (--baseline-rates) runs through bench/naive_worker.py,
and the result carries the ratios: sustained spans/s and CPU µs/span, pipeline over naive.
--profile records the worker with py-spy during every step and reports the top functions of
the highest sustained step. Results: bench/results/<name>-<commit>.json and .md.

    python -m bench.end_to_end --rates 1000,2000,4000,8000 --step-s 10 --baseline naive
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.broker import bench_broker
from bench.end_to_end_report import report_markdown, subject_summary
from bench.ladder import Ladder, run_ladder
from bench.record import record_result
from bench.step_report import EMISSION_ALLOWANCE_S
from bench.steps import SustainRule, ratio


def _rates(text: str) -> list[float]:
    try:
        rates = [float(r) for r in text.split(",") if r.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: {err}; should be e.g. 1000,2000") from err
    if not rates or any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError(f"{text!r}: should be spans/s above 0, e.g. 1000,2000")
    return rates


def main() -> None:
    """Run the ladder(s) and record the result."""
    parser = argparse.ArgumentParser(
        description=__doc__,
        epilog=SustainRule().describe() + " (--warmup-s sets the 2 s).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--rates",
        type=_rates,
        default=_rates("1000,2000,4000,8000,16000,32000"),
        help="spans/s of the steps, in order (default 1000,...,32000)",
    )
    parser.add_argument("--step-s", type=float, default=20.0, help="seconds per step (default 20)")
    parser.add_argument(
        "--warmup-s",
        type=float,
        default=2.0,
        help="seconds at a step's start left out of its rates (generator start-up, the "
        "previous step's tail; default 2)",
    )
    parser.add_argument(
        "--warmup-step-s",
        type=float,
        default=5.0,
        help="seconds of unrecorded load at the first rate before the first step (default 5)",
    )
    parser.add_argument(
        "--sample-s", type=float, default=1.0, help="seconds between readings (default 1)"
    )
    parser.add_argument(
        "--baseline",
        choices=["none", "naive"],
        default="none",
        help="naive: run the same load through bench/naive_worker.py too and report ratios",
    )
    parser.add_argument(
        "--baseline-rates",
        type=_rates,
        default=_rates("25,50,100,200,400"),
        help="the naive worker's steps (default 25,...,400: it stores a span per insert)",
    )
    parser.add_argument("--partitions", type=int, default=6, help="spans topic partitions")
    parser.add_argument(
        "--trace-idle-ms", type=int, default=5000, help="assembly.trace_idle_ms (default 5000)"
    )
    parser.add_argument(
        "--drain-s",
        type=float,
        default=60.0,
        help="longest wait after the last step for stored spans and emitted traces (default 60)",
    )
    parser.add_argument("--seed", type=int, default=1, help="generator seed of the first step")
    parser.add_argument(
        "--profile", action="store_true", help="record the worker with py-spy during each step"
    )
    parser.add_argument(
        "--name", default="end_to_end", help="result file name (default end_to_end)"
    )
    args = parser.parse_args()

    rule = SustainRule(warmup_s=args.warmup_s)
    print(rule.describe())
    root = Path(tempfile.mkdtemp(prefix="tracepipe-bench-"))
    print(f"logs and profiles under {root}")
    ladders: list[Ladder] = []
    with bench_broker(root) as bootstrap:
        ladders.append(run_ladder("pipeline", bootstrap, root, args.rates, args))
        if args.baseline == "naive":
            ladders.append(run_ladder("naive", bootstrap, root, args.baseline_rates, args))

    promise_s = args.trace_idle_ms / 1000 + EMISSION_ALLOWANCE_S
    subjects = {ladder.subject: subject_summary(ladder, promise_s) for ladder in ladders}
    pipeline = subjects["pipeline"]
    summary: dict[str, Any] = {
        "command": "python -m bench.end_to_end " + " ".join(sys.argv[1:]),
        "sustained_rule": rule.describe(),
        "step_s": args.step_s,
        "sample_s": args.sample_s,
        "partitions": args.partitions,
        "trace_idle_ms": args.trace_idle_ms,
        "profiled": args.profile,
        "subjects": subjects,
        # The headline figures record_result prints: the pipeline at its top sustained step.
        "spans_per_s": pipeline["highest_sustained_spans_per_s"],
        "cpu_us_per_span": pipeline["cpu_us_per_span_at_top"] or 0.0,
    }
    if "naive" in subjects:
        naive = subjects["naive"]
        # Each subject at its own highest sustained step; none where either has none.
        pairs = {
            "sustained_spans_per_s_pipeline_over_naive": (
                pipeline["highest_sustained_spans_per_s"],
                naive["highest_sustained_spans_per_s"],
            ),
            "cpu_us_per_span_naive_over_pipeline": (
                naive["cpu_us_per_span_at_top"],
                pipeline["cpu_us_per_span_at_top"],
            ),
        }
        summary["ratios"] = {
            name: ratio(above, below) if above and below else None
            for name, (above, below) in pairs.items()
        }
    markdown = report_markdown(ladders, summary, rule, summary["command"])
    record_result(args.name, summary, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
