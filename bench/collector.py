"""Side by side with the OpenTelemetry Collector: the same backlog of web-shop spans drained by
tracepipe and by the Collector, in one run, and the ratio of their CPU per span.

Three subjects, each on a fresh topic loaded before it starts (bench/backlog.py; the same seed
gives the same spans, with times ending at load time), one after the other:

- `tracepipe`: one worker (`python -m streams worker`) drains tracepipe's span batches
  (SpanProducer) from its spans topic: every span stored, every trace assembled (bench.drain);
- `tracepipe-otlp`: one worker drains the same spans as OTLP protobuf requests on its `otlp`
  topic (the bridge path: what a Collector's kafka exporter writes);
- `collector`: the Collector built by ../shared/peers/otelcol/build.sh reads the same OTLP
  requests with its kafka receiver (config: bench/otelcol.yaml): span metrics for every span,
  tail sampling (decision_wait = trace_idle), exporters nop. Its own Prometheus metrics say
  how many spans it accepted and how many traces it decided; CPU from /proc. GOMAXPROCS is
  `--collector-procs` (1: one core, as tracepipe's worker).

Printed and recorded: each subject's spans/s and CPU µs per span (steady: 10%..90% of the
backlog; settled: until every trace is emitted and stored, or decided), the broker's CPU per
span, and tracepipe over the Collector. Without the Collector binary the benchmark stops with
one line saying how to build it.

    python -m bench.collector --spans 300000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bench.backlog import Backlog, encode_otlp, generate_backlog, produce_payloads
from bench.broker import bench_broker, bootstrap_port, listener_pid
from bench.drain import add_backlog_arguments, load_average, run_drain, run_main, spans_loader
from bench.drain_figures import (
    Reading,
    coarse_warning,
    drain_figures,
    drain_start,
    settled_cpu_us_per_span,
)
from bench.record import record_result
from bench.steps import ratio
from streams.broker.probe import free_port
from streams.broker.topics import TopicNames, ensure_topics
from streams.config import load_settings
from streams.errors import TracepipeError
from streams.query.table import markdown_table
from streams.worker_process import process_cpu_seconds

REPOSITORY = Path(__file__).resolve().parent.parent
COLLECTOR_CONFIG = Path(__file__).resolve().parent / "otelcol.yaml"
DEFAULT_COLLECTOR = REPOSITORY / ".peers" / "otelcol"
"""Where `bash ../shared/peers/otelcol/build.sh`, run from the repository root, puts it."""
BUILD_SCRIPT = REPOSITORY.parent / "shared" / "peers" / "otelcol" / "build.sh"
COLLECTOR_SAMPLE_S = 0.1
"""The Collector drains a backlog in seconds: it is read more often than a worker."""


def stop_collector(process: subprocess.Popen[bytes]) -> None:
    """Stop a Collector process: SIGTERM, then SIGKILL if it has not exited within 30 s."""
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def collector_binary(explicit: str | None) -> Path:
    """The Collector to run: --otelcol, else $TRACEPIPE_OTELCOL, else .peers/otelcol."""
    return Path(explicit or os.environ.get("TRACEPIPE_OTELCOL") or DEFAULT_COLLECTOR)


def missing_collector_line(path: Path) -> str:
    """The one line printed when the Collector binary is not there."""
    return (
        f"bench.collector: no OpenTelemetry Collector at {path}; build it with `bash "
        f"{BUILD_SCRIPT}` from {REPOSITORY} (Go >= 1.25, ~6 min; it writes .peers/otelcol), or "
        "pass --otelcol PATH / set TRACEPIPE_OTELCOL"
    )


def prometheus_sum(text: str, name: str) -> float:
    """The sum over every label set of metric `name` in a Prometheus text exposition."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        rest = line[len(name) :]
        if rest[:1] not in ("{", " "):
            continue  # another metric whose name starts the same
        total += float(line.rsplit(" ", 1)[1])
    return total


ACCEPTED = "otelcol_receiver_accepted_spans"
DECIDED = "otelcol_processor_tail_sampling_global_count_traces_sampled"
DROPPED = "otelcol_processor_tail_sampling_sampling_trace_dropped_too_early"
"""Traces evicted before their decision (more than num_traces held): done with, undecided."""


def otlp_loader(
    args: argparse.Namespace,
    bootstrap: str,
    topic_of: Callable[[TopicNames], str],
    spans: int | None = None,
) -> Callable[[TopicNames], tuple[Backlog, dict[str, float]]]:
    """Generate the backlog (`spans`, default --spans), encode it as OTLP requests and produce
    them to `topic_of(...)`."""

    def load(topics: TopicNames) -> tuple[Backlog, dict[str, float]]:
        backlog = generate_backlog(spans or args.spans, args.seed, args.span_rate)
        requests, encode_cpu_s = encode_otlp(backlog.spans)
        produce_cpu_s = produce_payloads(bootstrap, topic_of(topics), requests)
        return backlog, {"otlp_encode": encode_cpu_s, "produce": produce_cpu_s}

    return load


def run_collector(
    binary: Path, bootstrap: str, root: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Load a fresh topic with the backlog as OTLP, start the Collector on it and read it until
    it has accepted every span and decided every trace."""
    settings = load_settings(
        env={
            **os.environ,
            "TRACEPIPE_KAFKA_BOOTSTRAP": bootstrap,
            "TRACEPIPE_KAFKA_PARTITIONS": str(args.partitions),
        }
    )
    topic = f"bench-otelcol-{os.getpid()}-{time.time_ns()}"
    ensure_topics(settings.kafka, [topic])
    # The Collector drains in about a second what a worker drains in a minute: a larger backlog
    # (the same seed's spans, and more) lets its readings cover seconds.
    load = otlp_loader(args, bootstrap, lambda _: topic, args.collector_spans or 5 * args.spans)
    backlog, produce_cpu_s = load(TopicNames.from_prefix("unused."))
    total = len(backlog.spans)
    metrics_port = free_port()
    env = {
        **os.environ,
        "GOMAXPROCS": str(args.collector_procs),
        "BENCH_KAFKA_BROKER": bootstrap,
        "BENCH_GROUP_ID": topic,
        "BENCH_TOPIC": topic,
        "BENCH_DECISION_WAIT": f"{args.trace_idle_ms}ms",
        "BENCH_METRICS_PORT": str(metrics_port),
        "BENCH_NUM_TRACES": str(max(50_000, backlog.traces * 11 // 10)),
    }
    broker_pid = listener_pid(bootstrap_port(bootstrap))
    log_path = root / "otelcol.log"
    root.mkdir(parents=True, exist_ok=True)
    readings: list[Reading] = []
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [str(binary), "--config", str(COLLECTOR_CONFIG)], env=env, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + args.drain_timeout_s
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        while True:
            if process.poll() is not None:
                raise TracepipeError(
                    f"the Collector exited with code {process.returncode}; see {log_path}"
                )
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    text = response.read().decode()
            except OSError:
                text = None  # not serving metrics yet
            if text is not None:
                readings.append(
                    Reading(
                        at_s=time.monotonic(),
                        at_unix_s=time.time(),
                        stored_spans=int(prometheus_sum(text, ACCEPTED)),
                        worker_cpu_s=process_cpu_seconds(process.pid),
                        broker_cpu_s=process_cpu_seconds(broker_pid) if broker_pid else None,
                        counters={},
                        open_traces=backlog.traces
                        - int(prometheus_sum(text, DECIDED) + prometheus_sum(text, DROPPED)),
                    )
                )
                last = readings[-1]
                if last.stored_spans >= total and last.open_traces <= 0:
                    break
            if time.monotonic() > deadline:
                raise TracepipeError(
                    f"the Collector did not drain in {args.drain_timeout_s:.0f} s; see {log_path}"
                )
            time.sleep(COLLECTOR_SAMPLE_S)
    finally:
        stop_collector(process)
    start = drain_start(readings)
    result = {
        "label": "collector",
        "backlog": {
            "spans": total,
            "traces": backlog.traces,
            "generate_cpu_us_per_span": backlog.generate_cpu_us_per_span,
            **{f"{k}_cpu_us_per_span": s / total * 1e6 for k, s in produce_cpu_s.items()},
        },
        "gomaxprocs": args.collector_procs,
        **drain_figures(readings, total),
        "settled_s": round(readings[-1].at_s - start.at_s, 2),
        "settled_cpu_us_per_span": settled_cpu_us_per_span(start, readings[-1], total),
        "broker_pid": broker_pid,
        "traces_dropped_too_early": int(prometheus_sum(text or "", DROPPED)),
        "log": str(log_path),
    }
    print(subject_line(result))
    warning = coarse_warning(result)
    if warning:
        print(f"collector: {warning} (--collector-spans)")
    return result


def headline(result: Mapping[str, Any]) -> Mapping[str, Any]:
    """The whole drain's figures: the backlog, from just before its first span was done to the
    last (each span once, whoever did it)."""
    figures: Mapping[str, Any] = result["whole"]
    return figures


def subject_line(result: Mapping[str, Any]) -> str:
    """A subject in one line."""
    figures = headline(result)
    return (
        f"{result['label']}: {figures['spans_per_s'] or 0:,.0f} spans/s, "
        f"{figures['worker_cpu_us_per_span'] or 0:,.1f} CPU µs/span "
        f"({result['settled_cpu_us_per_span']:,.1f} until settled), broker "
        f"{figures['broker_cpu_us_per_span'] or 0:,.1f} µs/span"
    )


def subject_row(result: Mapping[str, Any]) -> dict[str, str]:
    """A subject as a table row."""
    figures = headline(result)

    def cell(value: float | None, digits: int = 1) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    backlog = result["backlog"]
    return {
        "subject": result["label"],
        "spans": f"{backlog['spans']:,}",
        "spans/s": cell(figures["spans_per_s"], 0),
        "CPU µs/span": cell(figures["worker_cpu_us_per_span"]),
        "CPU µs/span until settled": cell(result["settled_cpu_us_per_span"]),
        "broker µs/span": cell(figures["broker_cpu_us_per_span"]),
        "load: generate / encode / produce µs/span": " / ".join(
            cell(backlog.get(k))
            for k in (
                "generate_cpu_us_per_span",
                "otlp_encode_cpu_us_per_span",
                "produce_cpu_us_per_span",
            )
        ),
    }


def main() -> None:
    """Run the three subjects and record the result."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_backlog_arguments(parser)
    parser.add_argument("--otelcol", help="the Collector binary (default .peers/otelcol)")
    parser.add_argument(
        "--collector-procs", type=int, default=1, help="the Collector's GOMAXPROCS (1)"
    )
    parser.add_argument(
        "--collector-spans",
        type=int,
        default=0,
        help="the Collector's backlog (default 5 x --spans: it drains one in about a second)",
    )
    parser.add_argument(
        "--subjects",
        default="tracepipe,tracepipe-otlp,collector",
        help="which subjects to run, in order (default all three)",
    )
    parser.add_argument("--name", default="collector", help="result file name (collector)")
    args = parser.parse_args()
    binary = collector_binary(args.otelcol)
    subjects = [s.strip() for s in args.subjects.split(",") if s.strip()]
    if "collector" in subjects and not os.access(binary, os.X_OK):
        print(missing_collector_line(binary), file=sys.stderr)
        raise SystemExit(2)
    root = Path(tempfile.mkdtemp(prefix="tracepipe-collector-"))
    load_before = load_average()
    print(f"logs under {root}; load average {load_before}")
    results: dict[str, dict[str, Any]] = {}
    with bench_broker(root) as bootstrap:
        for subject in subjects:
            if subject == "tracepipe":
                loader = spans_loader(args, bootstrap)
            elif subject == "tracepipe-otlp":
                loader = otlp_loader(args, bootstrap, lambda topics: topics.otlp)
            elif subject == "collector":
                results[subject] = run_collector(binary, bootstrap, root / subject, args)
                continue
            else:
                raise TracepipeError(
                    f"unknown subject {subject!r}; should be tracepipe, tracepipe-otlp, collector"
                )
            results[subject] = run_drain(bootstrap, root / subject, 1, args, loader, subject)
    summary: dict[str, Any] = {
        "command": "python -m bench.collector " + " ".join(sys.argv[1:]),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "subjects": results,
        "collector_config": COLLECTOR_CONFIG.read_text(),
    }
    ratios: dict[str, float | None] = {}
    if "collector" in results:
        peer = headline(results["collector"])
        for subject in ("tracepipe", "tracepipe-otlp"):
            if subject in results:
                ours = headline(results[subject])
                ratios[f"{subject}_over_collector_cpu_us_per_span"] = ratio(
                    ours["worker_cpu_us_per_span"] or 0.0, peer["worker_cpu_us_per_span"] or 0.0
                )
                ratios[f"collector_over_{subject}_spans_per_s"] = ratio(
                    peer["spans_per_s"] or 0.0, ours["spans_per_s"] or 0.0
                )
                ratios[f"{subject}_over_collector_cpu_us_per_span_until_settled"] = ratio(
                    results[subject]["settled_cpu_us_per_span"],
                    results["collector"]["settled_cpu_us_per_span"],
                )
                ratios[f"{subject}_over_collector_broker_cpu_us_per_span"] = ratio(
                    ours["broker_cpu_us_per_span"] or 0.0, peer["broker_cpu_us_per_span"] or 0.0
                )
    summary["ratios"] = ratios
    first = headline(next(iter(results.values())))
    summary["spans_per_s"] = first["spans_per_s"] or 0.0
    summary["cpu_us_per_span"] = first["worker_cpu_us_per_span"] or 0.0
    markdown = report_markdown(summary)
    record_result(args.name, summary, markdown)
    print(markdown)


def report_markdown(summary: Mapping[str, Any]) -> str:
    """The result as Markdown."""
    parts = [
        f"`{summary['command']}`",
        f"Load average before / after: {summary['load_average_before']} / "
        f"{summary['load_average_after']}.",
        markdown_table([subject_row(r) for r in summary["subjects"].values()]),
        "spans/s and CPU µs/span: the backlog over the seconds from just before its first span "
        "was stored (tracepipe: otel_traces rows) or accepted (the Collector's kafka receiver) "
        "to the last; CPU is the consumer process's utime + stime. Until settled: from just "
        "before the first span to every trace emitted and stored (tracepipe) or decided by tail"
        " sampling (Collector), per span. broker = the process listening on the bootstrap port."
        " load = this harness pre-loading the topic: the generator, OTLP encoding "
        "(bench/otlp.py) and the producer (SpanProducer for tracepipe's spans; librdkafka for "
        "OTLP requests).",
    ]
    ratios = summary.get("ratios") or {}
    if ratios:
        parts.append(
            markdown_table(
                [
                    {"ratio": k.replace("_", " "), "value": "-" if v is None else f"{v:,.1f}"}
                    for k, v in ratios.items()
                ]
            )
        )
    collector = summary["subjects"].get("collector")
    if collector:
        parts.append(
            f"The Collector ran with GOMAXPROCS={collector['gomaxprocs']}; config "
            "bench/otelcol.yaml (kafka receiver, otlp_proto -> span_metrics + tail_sampling -> "
            "nop)."
        )
    return "\n\n".join(parts)


if __name__ == "__main__":
    run_main("bench.collector", main)
