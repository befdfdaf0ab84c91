"""Assembler benchmark: the trace-assembly core in process (no Kafka), per span.

Feeds decoded spans of web-shop traces (TraceGenerator, about 9 spans each) into the
AssemblyStage (TraceBuffer + trace record with critical path + the table changes the worker
persists), drives the clock so every trace is emitted, and reports CPU µs per span and bytes of
state per held span (tracemalloc).

    python -m bench.assembler --traces 10000
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

from bench.record import record_result
from streams.assemble.stage import AssemblyStage
from streams.config import AssemblyConfig, SamplingConfig
from streams.generate.generator import TraceGenerator
from streams.generate.topology import default_topology
from streams.model.codec import AvroCodec
from streams.model.span import Span


def main() -> None:
    """Run and record."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--traces", type=int, default=10_000, help="web-shop traces (generate)")
    parser.add_argument(
        "--dict-spans",
        action="store_true",
        help="hold spans as dicts (assembly.compact_spans=false)",
    )
    args = parser.parse_args()

    generator = TraceGenerator(default_topology(), seed=1)
    now_ns = time.time_ns()
    traces = [generator.trace(now_ns + i) for i in range(args.traces)]
    spans: list[Span] = [s for t in traces for s in t]
    config = AssemblyConfig(max_open_traces=args.traces + 1, compact_spans=not args.dict_spans)
    clock = [0]
    stage = AssemblyStage(config, SamplingConfig(), lambda: clock[0])

    # State per held span: everything buffered, nothing emitted yet. Spans are decoded inside
    # the measurement, as the worker decodes them from Kafka, so their dicts count.
    codec = AvroCodec("span")
    encoded = codec.encode_batch(spans)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    stage.add([codec.decode(b) for b in encoded])
    stage.take_changes()
    held_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del encoded

    # CPU: a fresh stage, add + persist changes + sweep + build every record.
    stage = AssemblyStage(config, SamplingConfig(), lambda: clock[0])
    gc.freeze()
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    step_ns = 1_000_000
    for trace in traces:
        clock[0] += step_ns
        stage.add(trace)
        stage.take_changes()
    clock[0] += config.trace_idle_ms * 1_000_000 + step_ns
    finished = stage.finish_due()
    stage.take_changes()
    cpu_s = time.process_time() - cpu0
    wall_s = time.perf_counter() - wall0
    assert len(finished) == args.traces, len(finished)
    record_result(
        "assembler" if config.compact_spans else "assembler_dict_spans",
        {
            "traces": args.traces,
            "spans": len(spans),
            "cpu_us_per_span": cpu_s / len(spans) * 1e6,
            "spans_per_s": len(spans) / wall_s,
            "bytes_per_held_span": held_bytes / len(spans),
            "note": "in process: TraceBuffer + record + critical path + table changes; no Kafka, "
            "no Faust (its per-message cost: bench.faust_dispatch)",
        },
    )
    print(f"state: {held_bytes / len(spans):,.0f} bytes per held span")


if __name__ == "__main__":
    main()
