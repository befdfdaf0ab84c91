"""Stress the mid-stream SIGKILL (issue 8's stall): one span per message, small agent batches,
killed once half of the first half is stored, the second half produced while it is down.

Not collected by pytest (a long, repeated run). Each run prints whether the restarted worker
settled and, per tracepipe.spans partition, its committed and end offsets; for a partition
left behind, how many of its uncommitted messages' spans are stored (consumed, not committed)
or not (never consumed). Run from the repository root:

    python -m tests.reliability.stress_sigkill_mid --runs 10 [--parallel 2] [--buffer 256]
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from streams.broker.lag import GroupLag
from streams.broker.topics import TopicNames, ensure_topics
from streams.config import IngestConfig
from streams.errors import TracepipeError
from streams.model.codec import SCHEMA_HEADER
from streams.model.span import Span
from streams.query import Reader, count_spans
from streams.sdk import SpanProducer
from streams.sink.decoder import SpanDecoder
from streams.worker_process import WorkerProcess
from tests.integration.assemble.test_assembly import SPANS_PER_TRACE, trace_spans
from tests.integration.isolated import isolated_worker

TRACES = 3_000
SHUFFLE_WINDOW = 200
"""Traces whose spans are shuffled together, as services interleave them."""


@dataclass
class PartitionState:
    """One tracepipe.spans partition after the run: offsets and what its tail holds."""

    partition: int
    committed: int
    end: int
    uncommitted_messages: int = 0
    uncommitted_stored: int = 0
    first_uncommitted_stored: bool | None = None


@dataclass
class RunResult:
    """One run: whether it settled, in how long, and each spans partition."""

    run: int
    settled: bool
    settle_s: float | None
    spans_stored: int
    traces_complete: int
    partitions: list[PartitionState] = field(default_factory=list)


def workload(seed: int = 9) -> tuple[list[Span], list[Span]]:
    """3,000 three-span traces from a fixed seed, shuffled in windows; the two halves."""
    rng = random.Random(seed)
    now_ns = time.time_ns()
    windows: list[list[Span]] = []
    for _ in range(TRACES // SHUFFLE_WINDOW):
        window = [s for _ in range(SHUFFLE_WINDOW) for s in trace_spans(rng, now_ns)]
        rng.shuffle(window)
        windows.append(window)
    half = len(windows) // 2
    return [s for w in windows[:half] for s in w], [s for w in windows[half:] for s in w]


def send(worker: WorkerProcess, topic: str, spans: list[Span]) -> None:
    """One span per message, delivered before returning."""
    with SpanProducer(worker.settings.kafka.bootstrap, topic, batch_max_spans=1) as producer:
        producer.send_many(spans)
    if producer.failed:
        raise TracepipeError(f"{producer.failed} spans not delivered")


def summary(reader: Reader) -> tuple[int, int]:
    """(distinct spans stored, complete traces)."""
    spans = reader.query_dicts("SELECT uniqExact(TraceId, SpanId) AS n FROM otel_traces")[0]["n"]
    complete = reader.query_dicts(
        f"SELECT countIf(SpanCount = {SPANS_PER_TRACE}) AS n FROM tracepipe_traces FINAL"
    )[0]["n"]
    return int(spans), int(complete)


def partition_tail(
    bootstrap: str, topic: str, partition: int, start: int, end: int
) -> list[tuple[int, set[str]]]:
    """(offset, span ids) of every message of the partition from `start` to `end`."""
    decoder = SpanDecoder(IngestConfig())
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "stress-tail", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, partition, start)])
    out: list[tuple[int, set[str]]] = []
    deadline = time.monotonic() + 60
    try:
        while (not out or out[-1][0] < end - 1) and time.monotonic() < deadline:
            msg = consumer.poll(1)
            if msg is None or msg.error() is not None:
                continue
            headers = dict(msg.headers() or [])
            raw = headers.get(SCHEMA_HEADER)
            fingerprint = raw.decode() if isinstance(raw, bytes) else None
            columns, rejected, _ = decoder.decode(msg.value() or b"", fingerprint)
            spans = [*columns.spans(), *(s for s, _ in rejected)]
            out.append((msg.offset() or 0, {s["span_id"] for s in spans}))
    finally:
        consumer.close()
    return out


def one_run(run: int, bootstrap: str, root: Path, buffer: int, settle_s: float) -> RunResult:
    """Kill mid-stream, restart, and say what the restarted worker did."""
    worker = isolated_worker(
        bootstrap,
        root,
        TRACEPIPE_ASSEMBLY_TRACE_IDLE_MS="20000",
        TRACEPIPE_ASSEMBLY_TRACE_MAX_AGE_MS="200000",
        TRACEPIPE_ASSEMBLY_SWEEP_INTERVAL_MS="200",
        TRACEPIPE_SINK_BATCH_MAX_MESSAGES="20",
        TRACEPIPE_WORKER_STREAM_BUFFER_MAXSIZE=str(buffer),
    )
    ensure_topics(worker.settings.kafka)
    topic = TopicNames.from_prefix(worker.settings.kafka.topic_prefix).spans
    first, second = workload()
    worker.start()
    send(worker, topic, first)
    reader = worker.reader()
    due = len(first) // 2
    worker.wait_for(lambda: count_spans(reader) >= due, 180, f"{due} spans stored")
    assert worker.stop(signal.SIGKILL) == -signal.SIGKILL
    send(worker, topic, second)
    every = {s["span_id"] for s in first + second}

    restarted = time.monotonic()
    worker.start()
    reader = worker.reader()
    settled_after: float | None = None
    spans = complete = 0
    try:
        while time.monotonic() - restarted < settle_s:
            spans, complete = summary(reader)
            if spans == len(every) and complete == TRACES:
                settled_after = time.monotonic() - restarted
                break
            time.sleep(1)
        # The commit interval (Faust: 2.8 s) after the last batch.
        time.sleep(6)
        result = RunResult(run, settled_after is not None, settled_after, spans, complete)
        stored = {r["SpanId"] for r in reader.query_dicts("SELECT SpanId FROM otel_traces")}
        lag = GroupLag(bootstrap, worker.settings.worker.app_id, topic, 3)
        try:
            offsets = lag.by_partition()
        finally:
            lag.close()
        for partition, (committed, end) in sorted(offsets.items()):
            state = PartitionState(partition, committed, end)
            if committed < end:
                tail = partition_tail(bootstrap, topic, partition, committed, end)
                state.uncommitted_messages = len(tail)
                state.uncommitted_stored = sum(1 for _, ids in tail if ids <= stored)
                state.first_uncommitted_stored = bool(tail) and tail[0][1] <= stored
            result.partitions.append(state)
    finally:
        worker.stop()
    return result


def report(result: RunResult, root: Path) -> bool:
    """Print the run's line and save its JSON; True if it left a partition behind."""
    (root / "result.json").write_text(json.dumps(asdict(result), indent=1, default=str))
    behind = [p for p in result.partitions if p.committed < p.end]
    offsets = " ".join(f"p{p.partition}={p.committed}/{p.end}" for p in result.partitions)
    tails = " ".join(
        f"p{p.partition}: {p.uncommitted_stored}/{p.uncommitted_messages} stored, "
        f"first {'stored' if p.first_uncommitted_stored else 'not stored'}"
        for p in behind
    )
    settle = f"{result.settle_s:.0f}s" if result.settle_s is not None else "-"
    print(
        f"run {result.run}: {'settled' if result.settled else 'NOT SETTLED'} ({settle}) "
        f"spans {result.spans_stored} complete {result.traces_complete} "
        f"committed/end {offsets} {tails} [{root}]",
        flush=True,
    )
    return not result.settled or bool(behind)


def main(argv: list[str] | None = None) -> int:
    """Run the kill `--runs` times, `--parallel` at once; print one line per run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument(
        "--parallel",
        type=int,
        default=2,
        help="runs at once (the stall showed only under the load of two; 1 for a quiet one)",
    )
    parser.add_argument("--buffer", type=int, default=256, help="worker.stream_buffer_maxsize")
    parser.add_argument("--settle", type=float, default=180.0, help="seconds to wait after restart")
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--out", type=Path, default=Path("/tmp/stress-sigkill-mid"))
    args = parser.parse_args(argv)

    def run_one(run: int) -> bool:
        root = args.out / f"run-{int(time.time())}-{run}"
        return report(one_run(run, args.bootstrap, root, args.buffer, args.settle), root)

    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        stalled = sum(pool.map(run_one, range(1, args.runs + 1)))
    print(f"{stalled} of {args.runs} runs left a partition behind", flush=True)
    return 1 if stalled else 0


if __name__ == "__main__":
    sys.exit(main())
