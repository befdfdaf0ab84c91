"""Aggregation benchmark: the latency-window stage in process (no Kafka), per span.

Feeds decoded spans in span-agent-sized batches, grouped by partition as the agent hands them
over, through both phases: observations -> per-partition windows (vectorized sketch folds) ->
closed partials encoded to Avro -> decoded and merged -> final windows encoded to Avro. Reports
CPU µs per span for the whole stage and for phase one alone (what runs on every span).

    python -m bench.aggregator --spans 600000
"""

from __future__ import annotations

import argparse
import time

from bench.record import record_result
from streams.aggregate.merge import WindowMerger, final_record, partial_record, watermark_record
from streams.aggregate.observations import LATENCY_DIMENSIONS, latency_batch
from streams.aggregate.window import WindowAggregator
from streams.generate.generator import TraceGenerator
from streams.generate.topology import default_topology
from streams.model.codec import AvroCodec
from streams.model.column_codec import columns_from_spans
from streams.model.columns import SpanColumns
from streams.model.span import Span

PARTITIONS = 6


def main() -> None:
    """Run and record."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=600_000)
    parser.add_argument("--batch", type=int, default=5_000, help="spans per span-agent batch")
    parser.add_argument("--seconds", type=int, default=60, help="event-time range of the spans")
    args = parser.parse_args()

    generator = TraceGenerator(default_topology(), seed=1)
    start_ns = 1_700_000_000 * 1_000_000_000
    step_ns = args.seconds * 1_000_000_000 // args.spans
    spans: list[Span] = []
    while len(spans) < args.spans:
        spans.extend(generator.trace(start_ns + len(spans) * step_ns))
    spans = spans[: args.spans]
    batches: list[dict[int, SpanColumns]] = []
    for i in range(0, len(spans), args.batch):
        chunk = spans[i : i + args.batch]
        spans_of: dict[int, list[Span]] = {}
        for span in chunk:
            spans_of.setdefault(hash(span["trace_id"]) % PARTITIONS, []).append(span)
        batches.append({p: columns_from_spans(b) for p, b in spans_of.items()})

    aggregator = WindowAggregator(10_000, 30_000, 3_600_000, 0.01, 5)
    merger = WindowMerger(PARTITIONS, 5)
    partial_codec, latency_codec = AvroCodec("window_partial"), AvroCodec("latency")
    phase_one_s = 0.0
    finals = 0
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    for n, by_partition in enumerate(batches):
        # The replay's wall clock: the batch's last event time (a watermark never passes it).
        now_ns = start_ns + (n + 1) * args.batch * step_ns
        t0 = time.process_time()
        for partition, batch in by_partition.items():
            aggregator.add(partition, latency_batch(batch), now_ns)
        phase_one_s += time.process_time() - t0
        if n % 10 == 9 or n == len(batches) - 1:  # the emit timer, every ~10 batches
            closed, marks = aggregator.close_due(range(PARTITIONS), now_ns)
            for window in closed:
                merger.add(0, partial_codec.decode(partial_codec.encode(partial_record(window))))
            for source, through in marks.items():
                merger.add(0, watermark_record(source, through))
            for final in merger.take_final():
                latency_codec.encode(final_record(final, LATENCY_DIMENSIONS, 0))
                finals += 1
    cpu_s = time.process_time() - cpu0
    wall_s = time.perf_counter() - wall0
    record_result(
        "aggregator",
        {
            "spans": len(spans),
            "batch": args.batch,
            "windows_emitted": finals,
            "cpu_us_per_span": cpu_s / len(spans) * 1e6,
            "phase_one_cpu_us_per_span": phase_one_s / len(spans) * 1e6,
            "spans_per_s": len(spans) / wall_s,
            "note": "in process: observations + windows + sketch folds + partial/final Avro "
            "round trips + merge; no Kafka, no Faust (its per-message cost: "
            "bench.faust_dispatch; decode is shared with the span sink)",
        },
    )


if __name__ == "__main__":
    main()
