"""Producer benchmark: spans/s and CPU µs per span from one Python process to the real broker.

Two producers, each recorded separately:
  producer_sdk            pre-built web-shop spans (TraceGenerator) -> SpanProducer.send -> flush
  producer_otel_exporter  pre-built OpenTelemetry ReadableSpans -> KafkaSpanExporter.export
                          (batches of 512, BatchSpanProcessor's default) -> force_flush

CPU is the whole process's (time.process_time: the encoding thread plus librdkafka's threads).

    TRACEPIPE_KAFKA_BOOTSTRAP=127.0.0.1:19092 python -m bench.producer --spans 300000
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, set_span_in_context

from bench.broker import bench_broker
from bench.record import record_result
from streams.broker.topics import ensure_topics
from streams.config import load_settings
from streams.generate.generator import TraceGenerator
from streams.generate.topology import default_topology
from streams.model.span import Span
from streams.sdk import SpanProducer
from streams.sdk.otel import KafkaSpanExporter

EXPORT_BATCH = 512


def canonical_spans(total: int) -> list[Span]:
    """Web-shop traces as `tracepipe generate` makes them, `total` spans of them."""
    generator = TraceGenerator(default_topology(), seed=1)
    now_ns = time.time_ns()
    spans: list[Span] = []
    while len(spans) < total:
        spans.extend(generator.trace(now_ns + len(spans) * 1000))
    return spans[:total]


def otel_spans(total: int, spans_per_trace: int) -> list[ReadableSpan]:
    """Finished OpenTelemetry SDK spans: a SERVER root and CLIENT children with attributes."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "frontend", "service.version": "1.0.0"})
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench.producer", "1.0")
    for _ in range(total // spans_per_trace):
        root = tracer.start_span(
            "GET /checkout",
            kind=SpanKind.SERVER,
            attributes={"http.request.method": "GET", "http.response.status_code": 200},
        )
        context = set_span_in_context(root)
        for i in range(spans_per_trace - 1):
            child = tracer.start_span(
                f"call service{i % 5}",
                context=context,
                kind=SpanKind.CLIENT,
                attributes={"peer.index": i},
            )
            child.end()
        root.end()
    spans = list(memory.get_finished_spans())
    provider.shutdown()
    return spans


def measure(total: int, run: Callable[[], None]) -> dict[str, float]:
    """Wall time and process CPU time of `run`, per span."""
    # The pre-built input (hundreds of thousands of objects) is the benchmark's, not the
    # service's: keep the cyclic GC from re-scanning it on every collection while we measure.
    gc.collect()
    gc.freeze()
    cpu0, t0 = time.process_time(), time.perf_counter()
    run()
    wall_s = time.perf_counter() - t0
    cpu_s = time.process_time() - cpu0
    gc.unfreeze()
    return {
        "spans": total,
        "wall_s": round(wall_s, 3),
        "cpu_s": round(cpu_s, 3),
        "cpu_us_per_span": cpu_s / total * 1e6,
        "spans_per_s": total / wall_s,
    }


def main() -> None:
    """Run both producers and record one result each."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=300_000)
    parser.add_argument(
        "--spans-per-trace",
        type=int,
        default=10,
        help="spans per OpenTelemetry SDK trace (the SDK producer sends web-shop traces)",
    )
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args()

    with bench_broker(Path(tempfile.mkdtemp(prefix="tracepipe-bench-"))) as bootstrap:
        run(bootstrap, args)


def run(bootstrap: str, args: argparse.Namespace) -> None:
    """Both measurements against one broker."""
    run_id = uuid.uuid4().hex[:8]
    settings = load_settings(
        env={
            "TRACEPIPE_KAFKA_BOOTSTRAP": bootstrap,
            "TRACEPIPE_KAFKA_TOPIC_PREFIX": f"bench{run_id}.",
            "TRACEPIPE_KAFKA_PARTITIONS": str(args.partitions),
        }
    )
    sdk_topic, otel_topic = f"bench{run_id}.spans", f"bench{run_id}.otel-spans"
    ensure_topics(settings.kafka, [sdk_topic, otel_topic])

    spans = canonical_spans(args.spans)
    with SpanProducer(bootstrap, sdk_topic) as producer:
        producer.flush()  # connected and metadata known before the clock starts

        def send_all() -> None:
            producer.send_many(spans)
            producer.flush()

        result = measure(len(spans), send_all)
        assert producer.failed == 0 and producer.delivered == len(spans)
    record_result("producer_sdk", {**result, "partitions": args.partitions, "load": "web shop"})
    spans.clear()  # free the memory before building the OTel spans

    readable = otel_spans(args.spans, args.spans_per_trace)
    exporter = KafkaSpanExporter(bootstrap, otel_topic)
    exporter.force_flush()

    def export_all() -> None:
        for start in range(0, len(readable), EXPORT_BATCH):
            exporter.export(readable[start : start + EXPORT_BATCH])
        exporter.force_flush()

    result = measure(len(readable), export_all)
    assert exporter.producer.failed == 0 and exporter.dropped == 0
    exporter.shutdown()
    record_result(
        "producer_otel_exporter",
        {
            **result,
            "partitions": args.partitions,
            "spans_per_trace": args.spans_per_trace,
            "export_batch": EXPORT_BATCH,
        },
    )


if __name__ == "__main__":
    main()
