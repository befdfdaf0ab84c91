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
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.broker import bench_broker
from bench.naive_worker import NAIVE_COMMAND, UNDECODABLE
from bench.record import record_result
from bench.steps import (
    EMISSION_ALLOWANCE_S,
    SPANS_STORED,
    Sample,
    StepFigures,
    SustainRule,
    apply_delays,
    counter_value,
    delays_by_step,
    highest_on_time,
    highest_sustained,
    memory_per_held_trace,
    profile_summary,
    ratio,
    stage_rows,
    step_figures,
    step_of,
    step_row,
    summary_row,
)
from streams.broker.lag import GroupLag
from streams.broker.topics import TopicNames, ensure_topics
from streams.config import Settings
from streams.errors import TracepipeError
from streams.query import open_reader
from streams.query.table import markdown_table
from streams.worker_process import WORKER_COMMAND, WorkerProcess, isolated_env

SUBJECT_COMMANDS = {"pipeline": WORKER_COMMAND, "naive": NAIVE_COMMAND}
"""What runs as the worker for each subject."""
SPANS_PER_MESSAGE = {"pipeline": 500, "naive": 1}
"""`tracepipe generate --spans-per-message` per subject: the naive worker reads one span per
event, as a pipeline without span batches would."""


@dataclass
class Ladder:
    """One subject's run: its steps (figures, wall-clock window, generator totals), profiles."""

    subject: str
    root: Path
    """Where the subject's worker log, generator log, profiles and chDB data go."""
    steps: list[StepFigures] = field(default_factory=list)
    windows_ns: list[tuple[int, int]] = field(default_factory=list)
    generated: list[dict[str, Any]] = field(default_factory=list)
    samples: list[list[Sample]] = field(default_factory=list)
    profiles: list[Path] = field(default_factory=list)
    drained: bool = False
    warmup_spans: int = 0

    @property
    def worker_log(self) -> Path:
        """The worker's log file."""
        return self.root / "worker.log"


def read_sample(worker: WorkerProcess, lag: GroupLag) -> Sample:
    """One reading of the worker and its lag, now."""
    at_s = time.monotonic()
    try:
        stats = worker.stats()
    except OSError as err:  # URLError included: the worker died or stopped answering
        state = "exited" if worker.process and worker.process.poll() is not None else "running"
        raise TracepipeError(
            f"cannot read the worker's /api/stats ({err}; the worker is {state}); see "
            f"{worker.log_path}"
        ) from err
    _, end_offsets = lag.read()
    # Read lag, not committed lag: offsets are committed only once the latency windows their
    # spans feed are published (window + allowed lateness behind), which says nothing about
    # keeping up. Messages read by the span agent since the start (the topics are this run's).
    read = sum(stats["counters"].get("tracepipe_span_messages_consumed_total", {}).values())
    lag_messages = max(0, end_offsets - int(read))
    return Sample(
        at_s=at_s,
        cpu_s=worker.cpu_seconds(),
        rss_bytes=worker.rss_bytes(),
        counters=stats["counters"],
        assembly=stats.get("assembly", {}),
        lag_messages=lag_messages,
        end_offsets=end_offsets,
    )


def _generate(
    env: dict[str, str],
    rate: float,
    step_s: float,
    seed: int,
    log: Path,
    spans_per_message: int = 500,
) -> subprocess.Popen[bytes]:
    """Start `tracepipe generate` for one step in a process of its own."""
    command = [
        sys.executable,
        "-m",
        "streams",
        "generate",
        "--rate",
        f"{rate:g}",
        "--duration",
        f"{step_s:g}s",
        "--seed",
        str(seed),
        "--spans-per-message",
        str(spans_per_message),
        "--json",
    ]
    with open(log, "ab") as stderr:
        return subprocess.Popen(
            command, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=stderr
        )


def _totals(generator: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    """Wait for a `tracepipe generate --json` process; its totals (spans, spans_per_s, ...)."""
    out, _ = generator.communicate()
    if generator.returncode != 0:
        raise TracepipeError(
            f"the load generator exited with code {generator.returncode}; see {log}"
        )
    totals: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return totals


def _profile(pid: int, step_s: float, out: Path) -> subprocess.Popen[bytes]:
    """py-spy recording the worker for a step, collapsed stacks, without pausing it."""
    command = ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--output", str(out)]
    command += ["--duration", f"{max(1, round(step_s))}", "--rate", "100", "--nonblocking"]
    command += ["--full-filenames"]
    try:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except FileNotFoundError as err:
        raise TracepipeError(
            "--profile needs py-spy on PATH: pip install py-spy (into the same environment)"
        ) from err


def run_ladder(
    subject: str, bootstrap: str, root: Path, rates: Sequence[float], args: argparse.Namespace
) -> Ladder:
    """Run one subject's worker through the rates, stopping after the first unsustained step."""
    rule = SustainRule(warmup_s=args.warmup_s)
    env = isolated_env(
        bootstrap,
        root / subject,
        "e2e" if subject == "pipeline" else subject,
        TRACEPIPE_KAFKA_PARTITIONS=str(args.partitions),
        TRACEPIPE_ASSEMBLY_TRACE_IDLE_MS=str(args.trace_idle_ms),
        TRACEPIPE_WORKER_LOG_LEVEL="warning",
    )
    ladder = Ladder(subject, root / subject)
    worker = WorkerProcess(env, ladder.worker_log, SUBJECT_COMMANDS[subject])
    settings = worker.settings
    ensure_topics(settings.kafka)
    spans_topic = TopicNames.from_prefix(settings.kafka.topic_prefix).spans
    lag = GroupLag(bootstrap, settings.worker.app_id, spans_topic, settings.kafka.partitions)
    try:
        worker.start()

        def assigned() -> bool:
            owned = [a for a in worker.stats()["assigned"] if a.startswith(f"{spans_topic}:")]
            return len(owned) == settings.kafka.partitions

        worker.wait_for(assigned, 120, f"the worker to be assigned every {spans_topic} partition")
        if args.warmup_step_s > 0:
            # Unrecorded: the worker opens ClickHouse, imports and connects on its first spans;
            # that belongs to no rate. Its seed is one no step uses.
            warm = _generate(
                env,
                rates[0],
                args.warmup_step_s,
                args.seed - 1,
                ladder.root / "generate.log",
                SPANS_PER_MESSAGE[subject],
            )
            ladder.warmup_spans = int(_totals(warm, ladder.root / "generate.log")["spans"])
        print(
            f"{subject}: worker ready and warmed up (pid {worker.pid}, RSS "
            f"{worker.rss_bytes() / 2**20:.0f} MiB)"
        )
        for index, rate in enumerate(rates):
            figures = run_step(ladder, worker, lag, env, rate, index, rule, args)
            if counter_value(worker.stats()["counters"], UNDECODABLE):
                raise TracepipeError(
                    "the naive worker got records that are not one span each (its generator "
                    "runs with --spans-per-message 1, see SPANS_PER_MESSAGE); see "
                    f"{ladder.worker_log}"
                )
            print(
                f"{subject} step {index}: offered {figures.offered_spans_per_s:,.0f} spans/s, "
                f"stored {figures.stored_spans_per_s:,.0f}/s, {figures.cpu_us_per_span:,.1f} CPU "
                f"µs/span, RSS {figures.rss_bytes / 2**20:,.0f} MiB, "
                f"{figures.held_traces:,} held traces; {figures.verdict}"
            )
            behind_s = float(ladder.generated[-1].get("behind_s", 0.0))
            if behind_s > 0:
                # Then the load process, not the worker, set this step's rate.
                print(f"  the generator fell {behind_s:.1f} s behind its schedule (CPU-bound)")
            if not figures.sustained:
                break
        ladder.drained = drain(worker, ladder, args.drain_s)
    finally:
        lag.close()
        worker.stop()
    read_delays(settings, ladder)
    return ladder


def run_step(
    ladder: Ladder,
    worker: WorkerProcess,
    lag: GroupLag,
    env: dict[str, str],
    rate: float,
    index: int,
    rule: SustainRule,
    args: argparse.Namespace,
) -> StepFigures:
    """Offer `rate` spans/s for one step, sampling the worker; its figures and verdict."""
    root = ladder.root
    samples = [read_sample(worker, lag)]
    started_ns = time.time_ns()
    # A seed per step: repeating one would repeat trace ids, which the assembler takes for
    # late spans of traces it already emitted.
    generator = _generate(
        env,
        rate,
        args.step_s,
        args.seed + index,
        root / "generate.log",
        SPANS_PER_MESSAGE[ladder.subject],
    )
    profiler = None
    if args.profile:
        ladder.profiles.append(root / f"profile-{index}-{rate:g}.txt")
        profiler = _profile(worker.pid, args.step_s, ladder.profiles[-1])
    next_at = samples[0].at_s + args.sample_s
    while generator.poll() is None:
        time.sleep(max(0.0, min(next_at - time.monotonic(), 0.1)))
        if time.monotonic() >= next_at:
            samples.append(read_sample(worker, lag))
            next_at += args.sample_s
    finished_ns = time.time_ns()
    samples.append(read_sample(worker, lag))
    totals = _totals(generator, root / "generate.log")
    if profiler is not None:
        profiler.wait(timeout=args.step_s + 30)
    ladder.generated.append(totals)
    ladder.windows_ns.append((started_ns, finished_ns))
    ladder.samples.append(samples)
    figures = step_figures(int(totals["spans"]), float(totals["spans_per_s"]), samples, rule)
    ladder.steps.append(figures)
    return figures


def drain(worker: WorkerProcess, ladder: Ladder, timeout_s: float) -> bool:
    """Wait until every offered span is stored and every trace emitted and stored (or the time
    is up: an unsustained last step may leave a backlog); True if it drained."""
    offered = ladder.warmup_spans + sum(int(t["spans"]) for t in ladder.generated)

    def drained() -> bool:
        stats = worker.stats()
        counters = stats["counters"]
        emitted = counter_value(counters, "tracepipe_traces_emitted_total")
        stored_traces = counter_value(
            counters, "tracepipe_sink_rows_written_total", "table=tracepipe_traces"
        )
        return (
            counter_value(counters, *SPANS_STORED) >= offered
            and stats.get("assembly", {}).get("open_traces", 0) == 0
            and stored_traces >= emitted
        )

    try:
        worker.wait_for(drained, timeout_s, "the worker to drain")
    except TracepipeError as err:
        print(f"{ladder.subject}: {err}; delays of the last step count what was emitted")
        return False
    return True


def read_delays(settings: Settings, ladder: Ladder) -> None:
    """Each step's trace emission delays, from the first version of every stored trace."""
    with open_reader(settings) as reader:
        rows = reader.query_dicts(
            "SELECT toUnixTimestamp64Nano(argMin(Start, EmittedAt)) AS start_ns, "
            "toUnixTimestamp64Nano(argMin(End, EmittedAt)) AS end_ns, "
            "toUnixTimestamp64Nano(min(EmittedAt)) AS emitted_ns, "
            "max(Version) AS versions "
            "FROM tracepipe_traces GROUP BY TraceId"
        )
    traces = [(int(r["start_ns"]), int(r["end_ns"]), int(r["emitted_ns"])) for r in rows]
    for figures, (after_send, after_end) in zip(
        ladder.steps, delays_by_step(traces, ladder.windows_ns), strict=True
    ):
        apply_delays(figures, after_send, after_end)
    for row in rows:
        step = step_of(int(row["start_ns"]), ladder.windows_ns)
        if step is not None and int(row["versions"]) > 1:
            ladder.steps[step].traces_reemitted += 1


def subject_summary(ladder: Ladder, promise_s: float) -> dict[str, Any]:
    """A subject's part of the result."""
    top = highest_sustained(ladder.steps)
    on_time = highest_on_time(ladder.steps, promise_s)
    profiled = None
    if ladder.profiles:
        # The top sustained step's profile: what bounds the worker where it still keeps up.
        index = ladder.steps.index(top) if top is not None else len(ladder.steps) - 1
        path = ladder.profiles[index]
        profiled = {
            "step": index,
            "file": str(path),
            **profile_summary(path.read_text() if path.exists() else ""),
        }
    return {
        "highest_sustained_spans_per_s": top.stored_spans_per_s if top else 0.0,
        "rss_bytes_per_held_trace": memory_per_held_trace(ladder.samples),
        "highest_sustained_offered_spans_per_s": top.offered_spans_per_s if top else 0.0,
        "cpu_us_per_span_at_top": top.cpu_us_per_span if top else None,
        "delay_after_send_p99_s_at_top": top.delay_after_send_p99_s if top else None,
        "emission_promise_s": promise_s,
        "highest_on_time_spans_per_s": on_time.stored_spans_per_s if on_time else 0.0,
        "cpu_us_per_span_on_time": on_time.cpu_us_per_span if on_time else None,
        "drained": ladder.drained,
        "worker_log": str(ladder.worker_log),
        "steps": [
            {**asdict(s), "lag_growth_s": s.lag_growth_s, "generator": g}
            for s, g in zip(ladder.steps, ladder.generated, strict=True)
        ],
        "profile": profiled,
    }


def report_markdown(
    ladders: Sequence[Ladder], summary: dict[str, Any], rule: SustainRule, command: str
) -> str:
    """The result as Markdown: every step, the top step's stages, ratios, the profile."""
    parts = [f"`{command}`", rule.describe() + ".", "## Summary"]
    parts.append(
        markdown_table(
            [
                summary_row(
                    ladder.subject,
                    ladder.steps,
                    summary["subjects"][ladder.subject]["rss_bytes_per_held_trace"],
                    summary["subjects"][ladder.subject]["emission_promise_s"],
                )
                for ladder in ladders
            ]
        )
    )
    parts.append(
        "Figures of each subject's highest sustained step. delay = trace emission delay after "
        "the trace's spans were sent (EmittedAt - trace start: the generator sends a trace as "
        "it starts); JSON also has it after the trace's end. RSS per held trace = slope of the "
        "worker's RSS over the traces its assembler holds (open, and emitted but retained for "
        "late spans) across the samples after the first step. CPU is the whole worker process "
        "(user + system): stages share one process and one event loop, so CPU is not split by "
        "stage; the per-stage rates and the py-spy profile show where it goes. On time = the "
        "highest sustained step whose emission delay p99 kept within trace_idle + 2 s."
    )
    parts.append("## Steps")
    parts.append(
        markdown_table([step_row(ladder.subject, s) for ladder in ladders for s in ladder.steps])
    )
    for ladder in ladders:
        top = highest_sustained(ladder.steps)
        if top is None:
            parts.append(f"## {ladder.subject}: no sustained step")
            continue
        parts.append(
            f"## {ladder.subject}: per stage at {top.offered_spans_per_s:,.0f} spans/s offered"
        )
        parts.append(markdown_table(stage_rows(top)))
    ratios = summary.get("ratios")
    if ratios:
        parts.append("## Pipeline / naive")
        parts.append(
            markdown_table(
                [
                    {"ratio": k.replace("_", " "), "value": "-" if v is None else f"{v:,.1f}"}
                    for k, v in ratios.items()
                ]
            )
        )
    for ladder in ladders:
        profile = summary["subjects"][ladder.subject]["profile"]
        if profile and profile["self"]:
            parts.append(f"## {ladder.subject}: py-spy, step {profile['step']} (share of samples)")
            for key, heading in (
                ("self_by_package", "package (self)"),
                ("self", "function (self)"),
                ("streams_total", "tracepipe function (on the stack)"),
            ):
                rows = [{"share": f"{share:.1%}", heading: name} for name, share in profile[key]]
                parts.append(markdown_table(rows))
    return "\n\n".join(parts)


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
