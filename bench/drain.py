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
import json
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.backlog import Backlog, generate_backlog, produce_spans
from bench.broker import bench_broker, bootstrap_port, listener_pid
from bench.drain_figures import (
    STEADY_FROM,
    STEADY_TO,
    Reading,
    coarse_warning,
    drain_figures,
    drain_start,
    longest_stall_ms,
    merged_counters,
    settled_cpu_us_per_span,
    stored,
    traces_settled,
)
from bench.record import record_result
from bench.steps import SPANS_STORED, counter_value, ratio
from streams.broker.probe import free_port
from streams.broker.topics import TopicNames, ensure_topics
from streams.errors import TracepipeError
from streams.query import worker_url
from streams.query.table import markdown_table
from streams.worker.health import LIVENESS_PATH, READINESS_PATH
from streams.worker_process import WorkerProcess, isolated_env, process_cpu_seconds

PROBE_TIMEOUT_S = 60.0
"""A probe that takes longer counts as this long (and as failed)."""
BUFFER_FULL = "producer buffer full"


@dataclass
class Probe:
    """Response times of one endpoint of one worker, probed every period until stopped."""

    url: str
    period_s: float
    times: list[tuple[float, float, int]] = field(default_factory=list)
    """(monotonic start, seconds, HTTP status or 0 on failure)."""

    def run(self, stop: threading.Event) -> None:
        """Probe until `stop` is set."""
        while not stop.is_set():
            started = time.monotonic()
            status = 0
            try:
                with urllib.request.urlopen(self.url, timeout=PROBE_TIMEOUT_S) as response:
                    response.read()
                    status = response.status
            except urllib.error.HTTPError as err:  # /readyz answers 503 while rebalancing
                status = err.code
            except OSError:
                status = 0
            self.times.append((started, time.monotonic() - started, status))
            stop.wait(max(0.0, self.period_s - (time.monotonic() - started)))

    def slowest_s(self, since_s: float, until_s: float) -> float:
        """The slowest answer among the requests started within [since, until]."""
        return max((s for at, s, _ in self.times if since_s <= at <= until_s), default=0.0)

    def failures(self, since_s: float, until_s: float) -> int:
        """Requests that got no answer (timeout, refused) within [since, until]."""
        return sum(1 for at, _, status in self.times if since_s <= at <= until_s and not status)


@dataclass
class Group:
    """The workers of one run and what the harness read from them."""

    workers: list[WorkerProcess]
    broker_pid: int | None
    readings: list[Reading] = field(default_factory=list)
    stalls: dict[tuple[int, float], float] = field(default_factory=dict)
    stats_times: list[tuple[float, float]] = field(default_factory=list)
    """(monotonic start, seconds) of every /api/stats request."""

    def stats(self, index: int) -> dict[str, Any] | None:
        """Worker `index`'s /api/stats, None if it did not answer within PROBE_TIMEOUT_S (a
        stalled worker is what the benchmark measures, not a reason to stop)."""
        worker = self.workers[index]
        started = time.monotonic()
        stats: dict[str, Any] | None
        try:
            url = worker_url(worker.settings) + "/api/stats"
            with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:
                stats = json.loads(response.read())
        except OSError:
            if worker.process is not None and worker.process.poll() is not None:
                raise TracepipeError(
                    f"worker {index} exited with code {worker.process.returncode}; see "
                    f"{worker.log_path}"
                ) from None
            stats = None
        self.stats_times.append((started, time.monotonic() - started))
        return stats

    def read(self) -> Reading | None:
        """Read every worker's /api/stats and CPU, and the broker's CPU, now; None when a
        worker did not answer."""
        snapshots = []
        open_traces = 0
        for index in range(len(self.workers)):
            stats = self.stats(index)
            if stats is None:
                return None
            snapshots.append(stats["counters"])
            open_traces += int(stats.get("assembly", {}).get("open_traces", 0))
            for at, ms in stats.get("event_loop", {}).get("stalls", []):
                self.stalls[(index, float(at))] = float(ms)
        counters = merged_counters(snapshots)
        reading = Reading(
            at_s=time.monotonic(),
            at_unix_s=time.time(),
            stored_spans=counter_value(counters, *SPANS_STORED),
            worker_cpu_s=sum(w.cpu_seconds() for w in self.workers),
            broker_cpu_s=process_cpu_seconds(self.broker_pid) if self.broker_pid else None,
            counters=counters,
            open_traces=open_traces,
        )
        self.readings.append(reading)
        return reading


def group_envs(bootstrap: str, root: Path, workers: int, **extra: str) -> list[dict[str, str]]:
    """Settings for `workers` workers of one group: shared topics and app id, each its own chDB
    path (a store has one owner), data dir and web port."""
    first = isolated_env(bootstrap, root / "worker-0", "drain", **extra)
    envs = [first]
    for index in range(1, workers):
        member = root / f"worker-{index}"
        envs.append(
            {
                **first,
                "TRACEPIPE_CLICKHOUSE_URL": f"chdb://{member / 'chdb'}",
                "TRACEPIPE_WORKER_WEB_PORT": str(free_port()),
                "TRACEPIPE_WORKER_DATA_DIR": str(member / "worker"),
            }
        )
    return envs


def store_figures(workers: Sequence[WorkerProcess]) -> dict[str, Any]:
    """What the stores hold once drained: spans once each (across stores), traces, versions."""
    span_ids: set[str] = set()
    rows = traces = versions = 0
    for worker in workers:
        reader = worker.reader()
        counts = reader.query_dicts("SELECT count() AS rows FROM otel_traces")[0]
        rows += int(counts["rows"])
        span_ids.update(
            str(r["SpanId"]) for r in reader.query_dicts("SELECT DISTINCT SpanId FROM otel_traces")
        )
        pairs = reader.query_dicts(
            "SELECT uniqExact(TraceId) AS traces, uniqExact(TraceId, Version) AS versions "
            "FROM tracepipe_traces"
        )[0]
        traces += int(pairs["traces"])
        versions += int(pairs["versions"])
    return {
        "distinct_spans": len(span_ids),
        "span_rows": rows,
        "stored_traces": traces,
        "stored_trace_versions": versions,
    }


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
