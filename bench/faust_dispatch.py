"""Faust's own per-event cost: a worker whose agent does nothing but take_events batches.

The floor under every Faust stage that consumes one Kafka message per span: whatever a stage
does per span comes on top of this. Records CPU µs per event and events/s of the worker.

    python -m bench.faust_dispatch --events 100000
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.broker import bench_broker
from bench.record import record_result
from streams.broker.probe import free_port
from streams.broker.topics import ensure_topics
from streams.config import KafkaConfig


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_worker(bootstrap: str, topic: str, events: int, batch: int) -> None:
    """The child: a bare Faust app that counts events and prints its CPU cost once done."""
    import faust

    app = faust.App(
        f"dispatch-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        consumer_auto_offset_reset="earliest",
        web_port=free_port(),
        stream_wait_empty=False,
    )
    source = app.topic(topic, key_serializer="raw", value_serializer="raw")
    state: dict[str, Any] = {"seen": 0, "cpu0": None, "t0": None}

    @app.agent(source)
    async def count(stream: Any) -> None:
        async for batch_events in stream.take_events(batch, within=0.2):
            if state["cpu0"] is None:
                state["cpu0"], state["t0"] = _cpu_s(), time.perf_counter()
            state["seen"] += len(batch_events)
            if state["seen"] >= events:
                cpu = _cpu_s() - state["cpu0"]
                wall = time.perf_counter() - state["t0"]
                print(f"RESULT {state['seen']} {cpu} {wall}", flush=True)
                os._exit(0)

    sys.argv = [sys.argv[0], "worker", "-l", "warn"]
    app.main()


def main() -> None:
    """Produce N small records, run the bare worker over them, record its cost per event."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--child", nargs=2, metavar=("BOOTSTRAP", "TOPIC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_worker(args.child[0], args.child[1], args.events, args.batch)
        return

    import subprocess
    import tempfile

    from confluent_kafka import Producer

    with bench_broker(Path(tempfile.mkdtemp(prefix="tracepipe-bench-"))) as bootstrap:
        topic = f"dispatch-{uuid.uuid4().hex[:8]}"
        ensure_topics(KafkaConfig(bootstrap=bootstrap, partitions=6), [topic])
        producer = Producer(
            {"bootstrap.servers": bootstrap, "linger.ms": 20, "partitioner": "murmur2_random"}
        )
        for i in range(args.events):
            producer.produce(topic, b"x" * 120, b"%032x" % (i // 10))
            if i % 10_000 == 0:
                producer.poll(0)
        producer.flush(60)
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.faust_dispatch",
                "--events",
                str(args.events),
                "--batch",
                str(args.batch),
                "--child",
                bootstrap,
                topic,
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        # Faust redirects a worker's stdout into its log (stderr): look in both.
        line = next(ln for ln in (out.stdout + out.stderr).splitlines() if "RESULT " in ln)
        seen, cpu_s, wall_s = line.split("RESULT ", 1)[1].split()[:3]
        record_result(
            "faust_dispatch",
            {
                "events": int(seen),
                "batch": args.batch,
                "worker_cpu_s": round(float(cpu_s), 3),
                "wall_s": round(float(wall_s), 3),
                "cpu_us_per_span": float(cpu_s) / int(seen) * 1e6,
                "spans_per_s": int(seen) / float(wall_s),
            },
        )


if __name__ == "__main__":
    main()
