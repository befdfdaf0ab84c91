"""The OTLP bridge in process: Collector-style OTLP protobuf requests -> the bridge's pure core
(decode, validate, partition by trace id, span columns messages for `spans`).

No broker and no Faust: `bridge_batch` runs on batches of ready-made records, as the bridge
agent's `take_events` hands them over. Prints CPU µs/span and spans/s of this process.

    python -m bench.bridge --spans 100000
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

from bench.backlog import OTLP_SPANS_PER_MESSAGE, encode_otlp, generate_backlog
from bench.record import record_result
from streams.config import IngestConfig
from streams.ingest.bridge import bridge_batch
from streams.model.column_codec import SpanColumnsCodec


@dataclass(frozen=True)
class _Message:
    value: bytes
    key: bytes | None = None
    topic: str = "tracepipe.otlp"
    partition: int = 0
    offset: int = 0
    headers: tuple[Any, ...] = ()


@dataclass(frozen=True)
class _Event:
    message: _Message


def main() -> None:
    """Run the benchmark and record its result."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--records", type=int, default=10, help="OTLP records per bridge batch")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3, help="the fastest round counts")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    backlog = generate_backlog(args.spans, args.seed, 10_000)
    requests, _ = encode_otlp(backlog.spans)
    events = [_Event(_Message(value)) for value in requests]
    batches = [events[i : i + args.records] for i in range(0, len(events), args.records)]
    limits = IngestConfig()
    codec = SpanColumnsCodec()
    spans = len(backlog.spans)
    best_cpu_s = float("inf")
    for _ in range(args.rounds):
        started = time.process_time()
        bridged = sum(
            bridge_batch("otlp", batch, limits, args.partitions, codec).spans for batch in batches
        )
        best_cpu_s = min(best_cpu_s, time.process_time() - started)
        if bridged != spans:
            raise SystemExit(f"the bridge republished {bridged} of {spans} spans")
    record_result(
        "bridge",
        {
            "spans": spans,
            "spans_per_otlp_request": OTLP_SPANS_PER_MESSAGE,
            "records_per_batch": args.records,
            "partitions": args.partitions,
            "cpu_s": round(best_cpu_s, 4),
            "cpu_us_per_span": best_cpu_s / spans * 1e6,
            "spans_per_s": spans / best_cpu_s,
        },
    )


if __name__ == "__main__":
    main()
