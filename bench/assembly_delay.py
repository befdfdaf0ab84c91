"""Trace emission delay: from a trace's last span being produced to its record being emitted.

Runs a worker on the real broker, produces traces at a steady rate (each trace's spans together),
then reads tracepipe_traces' EmittedAt (the worker's clock; same machine) and reports p50/p99
of EmittedAt minus the time the trace's last span was sent. The floor is
assembly.trace_idle_ms plus up to one sweep interval.

    python -m bench.assembly_delay --traces 2000 --rate 200
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from bench.broker import bench_broker
from bench.record import record_result
from streams.broker.topics import TopicNames, ensure_topics
from streams.config import load_settings
from streams.demo import demo_trace
from streams.sdk import SpanProducer
from streams.worker_process import WorkerProcess, isolated_env


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    """Run and record."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--traces", type=int, default=2000)
    parser.add_argument("--spans-per-trace", type=int, default=5)
    parser.add_argument("--rate", type=float, default=200.0, help="traces per second")
    parser.add_argument("--idle-ms", type=int, default=5000, help="assembly.trace_idle_ms")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="tracepipe-bench-"))
    rng = random.Random(2)
    sent_at: dict[str, int] = {}
    with bench_broker(root) as bootstrap:
        env = isolated_env(
            bootstrap, root, "delay", TRACEPIPE_ASSEMBLY_TRACE_IDLE_MS=str(args.idle_ms)
        )
        settings = load_settings(env=env)
        ensure_topics(settings.kafka)
        topic = TopicNames.from_prefix(settings.kafka.topic_prefix).spans
        worker = WorkerProcess(env, root / "worker.log")
        try:
            worker.start()
            with SpanProducer(bootstrap, topic, extra_config={"linger.ms": 5}) as producer:
                start = time.perf_counter()
                for i in range(args.traces):
                    spans = demo_trace(rng, args.spans_per_trace, time.time_ns(), "delay")
                    producer.send_many(spans)
                    producer.poll(0)
                    sent_at[spans[0]["trace_id"]] = time.time_ns()
                    pause = start + (i + 1) / args.rate - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
            reader = worker.reader()

            def emitted() -> int:
                rows = reader.query_dicts("SELECT count() AS n FROM tracepipe_traces")
                return int(rows[0]["n"])

            worker.wait_for(lambda: emitted() >= args.traces, 600, "every trace emitted")
            rows = reader.query_dicts(
                "SELECT TraceId, min(EmittedAt) AS at FROM tracepipe_traces GROUP BY TraceId"
            )
        finally:
            worker.stop()
    delays_s = [
        (int(r["at"]) - sent_at[r["TraceId"]]) / 1e9 for r in rows if r["TraceId"] in sent_at
    ]
    p50, p99 = percentile(delays_s, 0.5), percentile(delays_s, 0.99)
    print(
        f"emission delay after the last span: p50 {p50:.2f} s, p99 {p99:.2f} s "
        f"(trace_idle {args.idle_ms / 1000:.1f} s)"
    )
    spans = args.traces * args.spans_per_trace
    record_result(
        "assembly_delay",
        {
            "traces": args.traces,
            "spans": spans,
            "rate_traces_per_s": args.rate,
            "trace_idle_ms": args.idle_ms,
            "emission_delay_p50_s": round(p50, 3),
            "emission_delay_p99_s": round(p99, 3),
            # Not a CPU benchmark: these two repeat the offered load, for the common record format.
            "cpu_us_per_span": 0.0,
            "spans_per_s": args.rate * args.spans_per_trace,
        },
    )


if __name__ == "__main__":
    main()
