"""Drain benchmark: a backlog pre-loaded on a fresh spans topic, drained by one worker or by two
in one consumer group, measured until every span is stored and every trace emitted.

Before any worker starts, `--spans` web-shop spans (bench/backlog.py) are generated and produced
as fast as SpanProducer goes; the generator's and the producer's CPU µs/span are printed apart.
Then `--workers` workers (`python -m streams worker`, each with its own chDB path, data dir and
port, one consumer group) drain it while the harness reads, every `--sample-s` (0.5 s): each
worker's /api/stats (counters, open traces, the event-loop stalls) and CPU (utime + stime from
/proc), and the broker's CPU (the process listening on the bootstrap port). Threads probe
/healthz and /readyz of every worker on the same period; every request's response time counts.

Printed and recorded per worker count: the drain rate (spans stored/s from the otel_traces rows
counters, steady = between 10% and 90% of the backlog stored; whole = from just before the first
span stored to the last), worker and broker CPU µs per stored span over the same readings, trace
versions emitted per trace, the slowest /healthz, /readyz and /api/stats answers and the longest
event-loop stall (streams/worker/loop_lag.py) during the drain, and the workers' "producer buffer
full" warnings. With `--workers 1,2`, the ratios two over one.

    python -m bench.drain --spans 300000 --workers 1,2
"""

from __future__ import annotations

import argparse
import concurrent.futures
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.backlog import Backlog, generate_backlog, produce_spans
from bench.broker import bench_broker, bootstrap_port, listener_pid
from bench.drain_figures import (
    Reading,
    coarse_warning,
    drain_figures,
    drain_start,
    longest_stall_ms,
    settled_cpu_us_per_span,
    stored,
    traces_settled,
)
from bench.drain_report import report_markdown, summary_line
from bench.record import record_result
from bench.steps import counter_value, ratio
from bench.worker_group import PROBE_TIMEOUT_S, Group, Probe, group_envs, store_figures
from streams.broker.topics import TopicNames, ensure_topics
from streams.errors import TracepipeError
from streams.query import worker_url
from streams.worker.health import LIVENESS_PATH, READINESS_PATH
from streams.worker_process import WorkerProcess

BUFFER_FULL = "producer buffer full"


def run_drain(
    bootstrap: str,
    root: Path,
    workers: int,
    args: argparse.Namespace,
    load: Callable[[TopicNames], tuple[Backlog, dict[str, float]]],
    label: str,
) -> dict[str, Any]:
    """Pre-load a fresh group's topics with `load` (the backlog and the CPU seconds of each
    producing step), start `workers` workers and measure until drained."""
    envs = group_envs(
        bootstrap,
        root,
        workers,
        TRACEPIPE_KAFKA_PARTITIONS=str(args.partitions),
        TRACEPIPE_ASSEMBLY_TRACE_IDLE_MS=str(args.trace_idle_ms),
        TRACEPIPE_WORKER_LOG_LEVEL="warning",
    )
    members = [WorkerProcess(env, root / f"worker-{i}.log") for i, env in enumerate(envs)]
    settings = members[0].settings
    ensure_topics(settings.kafka)
    backlog, produce_cpu_s = load(TopicNames.from_prefix(settings.kafka.topic_prefix))
    total = len(backlog.spans)
    loaded = {
        "spans": total,
        "traces": backlog.traces,
        "generate_cpu_us_per_span": backlog.generate_cpu_us_per_span,
        **{f"{step}_cpu_us_per_span": s / total * 1e6 for step, s in produce_cpu_s.items()},
    }
    print(
        f"{label}: backlog of {total:,} spans ({backlog.traces:,} traces) loaded: "
        + ", ".join(
            f"{k.removesuffix('_cpu_us_per_span')} {v:.1f}"
            for k, v in loaded.items()
            if k.endswith("_cpu_us_per_span")
        )
        + " CPU µs/span"
    )
    group = Group(members, listener_pid(bootstrap_port(bootstrap)))
    stop = threading.Event()
    probes: list[Probe] = []
    threads: list[threading.Thread] = []
    spawned_s = time.monotonic()
    try:
        with concurrent.futures.ThreadPoolExecutor(len(members)) as pool:
            list(pool.map(lambda w: w.start(120.0), members))
        started_s = time.monotonic()
        for worker in members:
            for path in (LIVENESS_PATH, READINESS_PATH):
                probes.append(Probe(worker_url(worker.settings) + path, args.sample_s))
        for probe in probes:
            threads.append(threading.Thread(target=probe.run, args=(stop,), daemon=True))
            threads[-1].start()
        deadline = started_s + args.drain_timeout_s
        spans_done: Reading | None = None
        while True:
            if time.monotonic() > deadline:
                last = group.readings[-1] if group.readings else None
                raise TracepipeError(
                    f"{label}: not drained after {args.drain_timeout_s:.0f} s "
                    f"({stored(last) if last else 0:,} of {total:,} spans stored, "
                    f"{last.open_traces if last else '?'} traces open); see {root}"
                )
            reading = group.read()
            if reading is None:
                continue
            if spans_done is None and stored(reading) >= total:
                spans_done = reading
            if spans_done is not None and traces_settled(reading):
                break
            time.sleep(max(0.0, args.sample_s - (time.monotonic() - reading.at_s)))
        settled = group.readings[-1]
        stop.set()
        store = store_figures(members)
    finally:
        stop.set()
        for thread in threads:
            thread.join(PROBE_TIMEOUT_S)
        for worker in members:
            if worker.process is not None:
                worker.stop()
    first = drain_start(group.readings)
    since, until = first.at_s, settled.at_s
    emitted = counter_value(settled.counters, "tracepipe_traces_emitted_total")
    warnings = sum(w.log_path.read_text(errors="replace").count(BUFFER_FULL) for w in members)
    result = {
        "label": label,
        "workers": workers,
        "backlog": loaded,
        "start_s": round(started_s - spawned_s, 2),
        **drain_figures(group.readings, total),
        "settled_s": round(settled.at_s - first.at_s, 2),
        "settled_cpu_us_per_span": settled_cpu_us_per_span(first, settled, total),
        "versions_emitted_per_trace": emitted / backlog.traces,
        "store": store,
        "slowest_s": {
            "healthz": max(
                p.slowest_s(since, until) for p in probes if p.url.endswith(LIVENESS_PATH)
            ),
            "readyz": max(
                p.slowest_s(since, until) for p in probes if p.url.endswith(READINESS_PATH)
            ),
            "api_stats": max(
                (s for at, s in group.stats_times if since <= at <= until), default=0.0
            ),
        },
        "probe_failures": sum(p.failures(since, until) for p in probes),
        "longest_loop_stall_ms": longest_stall_ms(group.stalls, first.at_unix_s, settled.at_unix_s),
        "producer_buffer_full_warnings": warnings,
        "broker_pid": group.broker_pid,
        "logs": str(root),
    }
    print(summary_line(result))
    warning = coarse_warning(result)
    if warning:
        print(f"{label}: {warning}")
    return result



def load_average() -> str:
    """The machine's 1/5/15-minute load averages, as /proc/loadavg says."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _counts(text: str) -> list[int]:
    try:
        counts = [int(n) for n in text.split(",") if n.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: {err}; should be e.g. 1,2") from err
    if not counts or any(n < 1 for n in counts):
        raise argparse.ArgumentTypeError(f"{text!r}: should be worker counts, e.g. 1,2")
    return counts


def add_backlog_arguments(parser: argparse.ArgumentParser) -> None:
    """The options the drain and Collector benchmarks share."""
    parser.add_argument("--spans", type=int, default=300_000, help="backlog spans (300000)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (ids too; 1)")
    parser.add_argument(
        "--span-rate",
        type=float,
        default=10_000.0,
        help="span times are spread as if sent at this rate, ending at load time (10000/s)",
    )
    parser.add_argument("--partitions", type=int, default=6, help="spans topic partitions (6)")
    parser.add_argument(
        "--trace-idle-ms", type=int, default=5000, help="assembly.trace_idle_ms (5000)"
    )
    parser.add_argument(
        "--sample-s", type=float, default=0.5, help="seconds between readings and probes (0.5)"
    )
    parser.add_argument(
        "--drain-timeout-s", type=float, default=900.0, help="longest drain allowed (900)"
    )


def spans_loader(
    args: argparse.Namespace, bootstrap: str
) -> Callable[[TopicNames], tuple[Backlog, dict[str, float]]]:
    """Generate the backlog and produce it to the spans topic with SpanProducer."""

    def load(topics: TopicNames) -> tuple[Backlog, dict[str, float]]:
        backlog = generate_backlog(args.spans, args.seed, args.span_rate)
        return backlog, {"produce": produce_spans(bootstrap, topics.spans, backlog.spans)}

    return load


def main() -> None:
    """Run the drain for each worker count and record the result."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_backlog_arguments(parser)
    parser.add_argument(
        "--workers", type=_counts, default=[1], help="worker counts, one drain each (1; e.g. 1,2)"
    )
    parser.add_argument("--name", default="drain", help="result file name (drain)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tracepipe-drain-"))
    print(f"logs under {root}; load average {load_average()}")
    load_before = load_average()
    runs = []
    with bench_broker(root) as bootstrap:
        for count in args.workers:
            label = f"{count} worker" + ("s" if count > 1 else "")
            runs.append(
                run_drain(
                    bootstrap, root / f"w{count}", count, args, spans_loader(args, bootstrap), label
                )
            )
    summary: dict[str, Any] = {
        "command": "python -m bench.drain " + " ".join(sys.argv[1:]),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "runs": runs,
        "spans_per_s": runs[0]["whole"]["spans_per_s"] or 0.0,
        "cpu_us_per_span": runs[0]["whole"]["worker_cpu_us_per_span"] or 0.0,
    }
    by_count = {r["workers"]: r for r in runs}
    if 1 in by_count and 2 in by_count:
        one, two = (by_count[n]["whole"] for n in (1, 2))
        summary["two_over_one"] = {
            "spans_per_s": ratio(two["spans_per_s"] or 0.0, one["spans_per_s"] or 0.0),
            "worker_cpu_us_per_span": ratio(
                two["worker_cpu_us_per_span"] or 0.0, one["worker_cpu_us_per_span"] or 0.0
            ),
        }
    markdown = report_markdown(summary)
    record_result(args.name, summary, markdown)
    print(markdown)



def run_main(name: str, entry: Callable[[], None]) -> None:
    """Run a benchmark's `main`; a TracepipeError is one line on stderr and exit status 1.
    SIGTERM exits through the `finally` blocks, which stop the workers and the broker."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        entry()
    except TracepipeError as err:
        print(f"{name}: {err}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    run_main("bench.drain", main)
