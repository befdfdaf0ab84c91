"""One subject's ladder in the end-to-end benchmark: its worker process, `tracepipe generate`
at each rate in a process of its own, the readings of the worker every --sample-s (CPU, RSS,
/api/stats, read lag on the spans topic), the drain after the last step, and each step's trace
emission delays read back from tracepipe_traces. The arithmetic is bench/steps.py's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.naive_worker import NAIVE_COMMAND, UNDECODABLE
from bench.py_spy import record_profile
from bench.steps import (
    SPANS_STORED,
    Sample,
    StepFigures,
    SustainRule,
    apply_delays,
    counter_value,
    delays_by_step,
    step_figures,
    step_of,
)
from streams.broker.lag import GroupLag
from streams.broker.topics import TopicNames, ensure_topics
from streams.config import Settings
from streams.errors import TracepipeError
from streams.query import open_reader
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
        profiler = record_profile(worker.pid, args.step_s, ladder.profiles[-1])
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
