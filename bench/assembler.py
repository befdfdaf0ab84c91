"""Assembler benchmark: the trace-assembly core in process (no Kafka), per span.

Feeds web-shop traces (TraceGenerator, about 8 spans each) as span column batches of 50 traces,
as the worker decodes them from tracepipe.spans, into the AssemblyStage (TraceBuffer + trace
record with critical path + the emitted mark the worker makes durable), drives the clock so every
trace is emitted, and reports CPU µs per span and bytes of state per held span (tracemalloc).
Then, per finished trace, what the worker does with its record after the sweep: encode it for
tracepipe.traces (as the sweep does), decode it (as a consumer of the topic does), its
tracepipe_traces and tracepipe_critical_path rows, its edge observations and its error-origin
observations. `--incident` makes some operations fail (`tracepipe generate`'s form), so that
traces have error origins (the web shop alone fails about one call in 500).

    python -m bench.assembler --traces 10000 [--include-spans | --no-include-spans]
        [--incident inventory:errors=20%]
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

from bench.record import record_result
from streams.aggregate.observations import edge_observations, origin_observations
from streams.assemble.record import TRACE_SCHEMA
from streams.assemble.record_codec import TraceRecordEncoder, encode_within
from streams.assemble.stage import AssemblyStage, FinishedTrace
from streams.config import AssemblyConfig, SamplingConfig
from streams.generate.generator import TraceGenerator
from streams.generate.incident import parse_incident
from streams.generate.topology import default_topology
from streams.model.codec import AvroCodec
from streams.model.column_codec import SpanColumnsCodec, columns_from_spans
from streams.model.span import Span
from streams.sink.traces import critical_path_rows, trace_row
from streams.worker.assemble import SWEEP_SLICE_TRACES, TRACE_RECORD_MAX_BYTES

BATCH_TRACES = 50
"""Traces per span column batch (~400 spans, as SpanProducer batches the web shop's)."""


def emission_figures(finished: list[FinishedTrace]) -> dict[str, float]:
    """CPU µs per trace of each step a finished record takes after the sweep built it, and its
    size on tracepipe.traces."""
    codec = AvroCodec(TRACE_SCHEMA)
    encoder = TraceRecordEncoder(codec)
    records = [item.record for item in finished]
    cpu0 = time.process_time()
    # In sweep slices, as the worker encodes them.
    published = [
        item
        for i in range(0, len(records), SWEEP_SLICE_TRACES)
        for item in encode_within(
            encoder, records[i : i + SWEEP_SLICE_TRACES], TRACE_RECORD_MAX_BYTES
        )
    ]
    cpu1 = time.process_time()
    decoded = [codec.decode(value, codec.fingerprint) for _, value in published]
    cpu2 = time.process_time()
    for r in decoded:
        trace_row(r)
        critical_path_rows(r)
    cpu3 = time.process_time()
    edge_observations(decoded)
    cpu4 = time.process_time()
    origin_observations(records)
    cpu5 = time.process_time()
    per_trace = 1e6 / len(records)
    return {
        "record_bytes_per_trace": sum(len(v) for _, v in published) / len(records),
        "encode_us_per_trace": (cpu1 - cpu0) * per_trace,
        "decode_us_per_trace": (cpu2 - cpu1) * per_trace,
        "rows_us_per_trace": (cpu3 - cpu2) * per_trace,
        "edges_us_per_trace": (cpu4 - cpu3) * per_trace,
        "origins_us_per_trace": (cpu5 - cpu4) * per_trace,
        "error_traces": sum(1 for r in records if r["error_origins"]),
    }


def main() -> None:
    """Run and record."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--traces", type=int, default=10_000, help="web-shop traces (generate)")
    parser.add_argument(
        "--include-spans",
        action=argparse.BooleanOptionalAction,
        default=AssemblyConfig().include_spans,
        help="trace records carry full spans (assembly.include_spans; default: its default)",
    )
    parser.add_argument(
        "--incident",
        action="append",
        default=[],
        help="an operation failing (e.g. inventory:errors=20%%), repeatable",
    )
    args = parser.parse_args()

    generator = TraceGenerator(
        default_topology(), seed=1, incidents=[parse_incident(i) for i in args.incident]
    )
    now_ns = time.time_ns()
    traces = [generator.trace(now_ns + i) for i in range(args.traces)]
    spans: list[Span] = [s for t in traces for s in t]
    config = AssemblyConfig(max_open_traces=args.traces + 1, include_spans=args.include_spans)
    clock = [0]
    stage = AssemblyStage(config, SamplingConfig(), lambda: clock[0])

    # State per held span: everything buffered, nothing emitted yet. Batches are decoded inside
    # the measurement, as the worker decodes them from Kafka, and dropped once held (the
    # worker's are), so only what the stage keeps of them counts.
    codec = SpanColumnsCodec()
    encoded = [
        codec.encode(columns_from_spans([s for t in traces[i : i + BATCH_TRACES] for s in t]))
        for i in range(0, len(traces), BATCH_TRACES)
    ]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for value in encoded:
        stage.add_columns(codec.decode(value))
    held_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    batches = [codec.decode(value) for value in encoded]
    del encoded

    # CPU: a fresh stage, add + sweep + build every record (and its emitted mark).
    stage = AssemblyStage(config, SamplingConfig(), lambda: clock[0])
    gc.freeze()
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    step_ns = 1_000_000
    for columns in batches:
        clock[0] += step_ns
        stage.add_columns(columns)
    clock[0] += config.trace_idle_ms * 1_000_000 + step_ns
    finished = stage.finish_due()
    cpu_s = time.process_time() - cpu0
    wall_s = time.perf_counter() - wall0
    assert len(finished) == args.traces, len(finished)
    gc.unfreeze()
    emission = emission_figures(finished)
    name = "assembler"
    if args.incident:
        name += "_incidents"
    record_result(
        name + ("_with_spans" if config.include_spans else ""),
        {
            "traces": args.traces,
            "spans": len(spans),
            "cpu_us_per_span": cpu_s / len(spans) * 1e6,
            "spans_per_s": len(spans) / wall_s,
            "bytes_per_held_span": held_bytes / len(spans),
            "include_spans": config.include_spans,
            "incidents": args.incident,
            **emission,
            "note": "in process: TraceBuffer + record + critical path + table changes; no Kafka, "
            "no Faust (its per-message cost: bench.faust_dispatch). Per trace after the sweep: "
            "record encode (as published), decode (as a consumer of the topic reads it), trace and "
            "critical-path rows, edge observations, error-origin observations",
        },
    )
    print(f"state: {held_bytes / len(spans):,.0f} bytes per held span")
    steps = ", ".join(
        f"{step} {emission[f'{step}_us_per_trace']:.1f} µs"
        for step in ("encode", "decode", "rows", "edges", "origins")
    )
    print(
        f"per trace ({len(spans) / len(finished):.1f} spans): record "
        f"{emission['record_bytes_per_trace']:,.0f} B, {steps}"
    )


if __name__ == "__main__":
    main()
