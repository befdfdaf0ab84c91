"""Early emission when spans arrive apart: the assembly stage in process, on a driven clock.

Each service's spans of a web-shop trace arrive after that service's own export delay, drawn
uniformly from 0 to --max-delay-s (an SDK's BatchSpanProcessor exports on its own schedule, so
a trace's parts come from different services at different times); the stage is swept every
--sweep-ms. Printed per delay: the share of traces emitted as soon as they were whole, the share
stored in more than one version (emitted before a part arrived), the emission delay after the
trace's last span (p50/p99), and the stage's CPU µs per span and spans per second. Traces that
started in the first --learn-s (the worker learns the shapes from traces that go idle) are left
out of the shares and delays.

    python -m bench.early_emission --traces 20000 --max-delay-s 0,1,3,5
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from bench.record import record_result
from bench.steps import percentile
from streams.assemble.stage import AssemblyStage
from streams.config import AssemblyConfig, SamplingConfig
from streams.generate.generator import TraceGenerator
from streams.generate.topology import default_topology
from streams.model.span import Span
from streams.query.table import markdown_table

NS = 1_000_000_000


def arrivals(traces: int, rate: float, max_delay_s: float, seed: int) -> list[tuple[float, Span]]:
    """Web-shop spans with the second each arrives: trace i starts at i / rate, each service's
    spans of it arrive together after that service's delay."""
    generator = TraceGenerator(default_topology(), seed=seed)
    rng = random.Random(seed)
    out: list[tuple[float, Span]] = []
    for i in range(traces):
        start_s = i / rate
        spans = generator.trace(int(start_s * NS) + 1)
        delays = {s["service_name"]: rng.uniform(0, max_delay_s) for s in spans}
        out += [(start_s + delays[s["service_name"]], s) for s in spans]
    out.sort(key=lambda item: item[0])
    return out


def run(
    events: list[tuple[float, Span]], sweep_s: float, learn_s: float, early: bool
) -> dict[str, Any]:
    """Feed `events` in arrival order, sweeping every `sweep_s`; the figures of one run."""
    clock = [0]
    stage = AssemblyStage(
        AssemblyConfig(early_emission=early), SamplingConfig(), lambda: clock[0]
    )
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    versions: dict[str, int] = {}
    delays: list[float] = []
    whole = measured = 0
    k, now_s = 0, 0.0
    end_s = events[-1][0] + stage.config.trace_idle_ms / 1000 + 2 * sweep_s
    cpu = time.process_time()
    while now_s < end_s:
        now_s += sweep_s
        while k < len(events) and events[k][0] <= now_s:
            at, span = events[k]
            clock[0] = int(at * NS)
            stage.add([span])
            first.setdefault(span["trace_id"], at)
            last[span["trace_id"]] = at
            k += 1
        clock[0] = int(now_s * NS)
        for finished in stage.finish_due():
            trace_id = finished.record["trace_id"]
            versions[trace_id] = finished.record["version"]
            if finished.record["version"] == 1 and first[trace_id] >= learn_s:
                measured += 1
                whole += finished.whole
                delays.append(now_s - last[trace_id])
    cpu = time.process_time() - cpu
    counted = [t for t in versions if first[t] >= learn_s]
    again = sum(1 for t in counted if versions[t] > 1)
    return {
        "early_emission": early,
        "traces_measured": measured,
        "emitted_whole_share": whole / measured if measured else 0.0,
        "reemitted_share": again / len(counted) if counted else 0.0,
        "delay_after_last_span_p50_s": percentile(delays, 0.5) if delays else 0.0,
        "delay_after_last_span_p99_s": percentile(delays, 0.99) if delays else 0.0,
        "cpu_us_per_span": cpu / len(events) * 1e6,
        "spans_per_s": len(events) / cpu if cpu else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    """Run every delay with early emission on (and once off, for the CPU beside it)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--traces", type=int, default=20_000, help="traces (default 20000)")
    parser.add_argument(
        "--rate", type=float, default=500.0, help="traces started per second (default 500)"
    )
    parser.add_argument(
        "--max-delay-s",
        default="0,1,3,5",
        help="comma-separated largest export delays per service, seconds (default 0,1,3,5)",
    )
    parser.add_argument("--sweep-ms", type=int, default=250, help="sweep interval (default 250)")
    parser.add_argument(
        "--learn-s", type=float, default=10.0, help="traces started before this are left out"
    )
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    delays = [float(d) for d in args.max_delay_s.split(",") if d.strip()]
    runs = []
    for index, max_delay_s in enumerate(delays):
        events = arrivals(args.traces, args.rate, max_delay_s, args.seed)
        modes = (True, False) if index == 0 else (True,)
        for early in modes:
            figures = run(events, args.sweep_ms / 1000, args.learn_s, early)
            runs.append({"max_delay_s": max_delay_s, "spans": len(events), **figures})
            print(
                f"max delay {max_delay_s:g} s, early emission {'on' if early else 'off'}: "
                f"{figures['emitted_whole_share']:.1%} whole, "
                f"{figures['reemitted_share']:.2%} re-emitted, delay after last span p50 "
                f"{figures['delay_after_last_span_p50_s']:.2f} s p99 "
                f"{figures['delay_after_last_span_p99_s']:.2f} s, "
                f"{figures['cpu_us_per_span']:.2f} CPU µs/span, "
                f"{figures['spans_per_s']:,.0f} spans/s"
            )
    table = markdown_table(
        [
            {
                "max delay s": f"{r['max_delay_s']:g}",
                "early": "on" if r["early_emission"] else "off",
                "whole": f"{r['emitted_whole_share']:.1%}",
                "re-emitted": f"{r['reemitted_share']:.2%}",
                "p50 s": f"{r['delay_after_last_span_p50_s']:.2f}",
                "p99 s": f"{r['delay_after_last_span_p99_s']:.2f}",
                "CPU µs/span": f"{r['cpu_us_per_span']:.2f}",
            }
            for r in runs
        ]
    )
    record_result(
        "early_emission",
        {
            "traces": args.traces,
            "rate": args.rate,
            "sweep_ms": args.sweep_ms,
            # The headline: early emission on, at the largest delay.
            "cpu_us_per_span": runs[-1]["cpu_us_per_span"],
            "spans_per_s": runs[-1]["spans_per_s"],
            "runs": runs,
        },
        table,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
