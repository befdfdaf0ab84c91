"""A backlog of web-shop spans, generated up front and produced as fast as the client goes.

The drain and Collector benchmarks load a fresh topic with it before any consumer starts, so
the load generator can never be what bounds the consumer. Generating and producing are timed
apart (CPU of this process, librdkafka's threads included), and each is printed as CPU µs per
span beside the consumer's figures. The same `seed` gives the same spans (shapes and ids), with
times that end at the moment of generation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from confluent_kafka import Producer

from bench.otlp import otlp_requests
from streams.errors import TracepipeError
from streams.generate.generator import TraceGenerator
from streams.generate.topology import default_topology
from streams.model.span import Span
from streams.sdk import SpanProducer
from streams.sdk.producer import PRODUCER_DEFAULTS

OTLP_SPANS_PER_MESSAGE = 500
"""Spans per OTLP request on Kafka: the size of tracepipe's span batches, and about what a
Collector's batch processor in front of a kafka exporter sends."""


@dataclass(frozen=True)
class Backlog:
    """Generated spans, how many traces they make, and what generating them cost."""

    spans: list[Span]
    traces: int
    generate_cpu_s: float

    @property
    def generate_cpu_us_per_span(self) -> float:
        """The generator's CPU per span."""
        return self.generate_cpu_s / len(self.spans) * 1e6


def generate_backlog(spans: int, seed: int, span_rate_per_s: float) -> Backlog:
    """At least `spans` spans of whole web-shop traces whose starts are spread as if sent at
    `span_rate_per_s`, the last one starting now."""
    generator = TraceGenerator(default_topology(), seed=seed, id_seed=seed)
    origin_ns = time.time_ns() - int(spans / span_rate_per_s * 1e9)
    ns_per_span = 1e9 / span_rate_per_s
    out: list[Span] = []
    started = time.process_time()
    while len(out) < spans:
        out.extend(generator.trace(origin_ns + int(len(out) * ns_per_span)))
    return Backlog(out, generator.traces_generated, time.process_time() - started)


def timed(action: Callable[[], None]) -> float:
    """CPU seconds of this process (every thread) while `action` runs."""
    started = time.process_time()
    action()
    return time.process_time() - started


def produce_spans(bootstrap: str, topic: str, spans: Sequence[Span]) -> float:
    """Send `spans` through SpanProducer (tracepipe's own wire format) and wait for delivery;
    the CPU seconds it took."""

    def send() -> None:
        with SpanProducer(bootstrap, topic) as producer:
            producer.send_many(spans)
            unsent = producer.flush(120.0) + producer.failed
        if unsent:
            raise TracepipeError(f"{unsent} spans were not delivered to {topic}")

    return timed(send)


def encode_otlp(spans: Sequence[Span]) -> tuple[list[bytes], float]:
    """OTLP protobuf requests of `spans` (OTLP_SPANS_PER_MESSAGE each), and the CPU seconds."""
    requests: list[bytes] = []
    cpu_s = timed(lambda: requests.extend(otlp_requests(spans, OTLP_SPANS_PER_MESSAGE)))
    return requests, cpu_s


def produce_payloads(bootstrap: str, topic: str, payloads: Sequence[bytes]) -> float:
    """Send ready-made payloads (OTLP requests) to `topic` with the SDK's producer settings, one
    message each, spread over the partitions; the CPU seconds it took."""

    def send() -> None:
        settings = {k: v for k, v in PRODUCER_DEFAULTS.items() if k != "partitioner"}
        producer = Producer({"bootstrap.servers": bootstrap, **settings})
        failed: list[str] = []

        def delivered(err: object, _message: object) -> None:
            if err is not None:
                failed.append(str(err))

        for payload in payloads:
            while True:
                try:
                    producer.produce(topic, payload, on_delivery=delivered)
                    break
                except BufferError:  # the local queue is full: let librdkafka send
                    producer.poll(0.1)
            producer.poll(0)
        left = producer.flush(120.0)
        if left or failed:
            raise TracepipeError(
                f"{left + len(failed)} payloads were not delivered to {topic}"
                + (f" (first error: {failed[0]})" if failed else "")
            )

    return timed(send)
