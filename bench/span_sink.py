"""Span sink benchmark: spans already on tracepipe.spans -> worker -> chDB otel_traces.

Measures the worker process only: CPU seconds it spends (user+system, from /proc) and the
wall time from when it is ready until every span is in otel_traces. The spans are produced
before the worker starts, so the producer's cost is not counted here.

    python -m bench.span_sink --spans 200000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.broker import bench_broker
from bench.record import record_result
from streams.broker.topics import TopicNames, ensure_topics
from streams.config import load_settings
from streams.generate.generator import TraceGenerator
from streams.generate.topology import default_topology
from streams.query import count_spans
from streams.sdk import SpanProducer
from streams.worker_process import WorkerProcess, isolated_env


def main() -> None:
    """Run the benchmark and record its result."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--batch", type=int, default=5000, help="sink.batch_max_spans")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="tracepipe-bench-"))
    with bench_broker(root) as bootstrap:
        env = isolated_env(
            bootstrap,
            root,
            "bench",
            TRACEPIPE_KAFKA_PARTITIONS=str(args.partitions),
            TRACEPIPE_SINK_BATCH_MAX_SPANS=str(args.batch),
        )
        settings = load_settings(env=env)
        ensure_topics(settings.kafka)
        topic = TopicNames.from_prefix(settings.kafka.topic_prefix).spans
        generator = TraceGenerator(default_topology(), seed=1)
        now_ns = time.time_ns()
        total = 0
        with SpanProducer(bootstrap, topic) as producer:
            while total < args.spans:
                total += producer.send_many(generator.trace(now_ns + total * 1000))
        print(f"produced {total:,} spans to {topic}")

        worker = WorkerProcess(env, root / "worker.log")
        try:
            worker.start()
            reader = worker.reader()
            cpu0, t0 = worker.cpu_seconds(), time.perf_counter()
            worker.wait_for(lambda: count_spans(reader) >= total, 1800, f"{total} spans stored")
            wall_s = time.perf_counter() - t0
            cpu_s = worker.cpu_seconds() - cpu0
        finally:
            worker.stop()
    record_result(
        "span_sink",
        {
            "spans": total,
            "partitions": args.partitions,
            "batch_max_spans": args.batch,
            "wall_s": round(wall_s, 3),
            "worker_cpu_s": round(cpu_s, 3),
            "cpu_us_per_span": cpu_s / total * 1e6,
            "spans_per_s": total / wall_s,
        },
    )


if __name__ == "__main__":
    main()
