"""The naive baseline: a first-try Faust tracing worker, so every optimisation is a ratio.

One agent reads tracepipe.spans one event at a time (`async for`): it decodes the span, inserts
it into otel_traces on its own, and keeps the trace's spans in a plain dict. A timer emits each
trace idle for `assembly.trace_idle_ms` as one tracepipe_traces row, inserted on its own. No
batching anywhere, no changelog, no latency windows or edges, no late-span versions: it does
less than the real worker, so ratios against it understate the real worker's gain. Inserts run
on the event loop, as a first version would call a client.

It reads the same settings as the worker (topics, chDB path, app id, web port) and serves
/api/stats in the worker's shape, so bench.end_to_end drives both alike:

    python -m bench.end_to_end --baseline naive       (starts `python -m bench.naive_worker`)
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

import faust
from faust.web import Request, Response, View

from streams.assemble.record import build_trace_record
from streams.broker.topics import TopicNames, ensure_topics
from streams.config import load_settings
from streams.errors import DecodeError
from streams.model.codec import SCHEMA_HEADER, AvroCodec, header_value
from streams.model.span import Span
from streams.sink.spans import OTEL_TRACES, OTEL_TRACES_COLUMNS, span_row
from streams.sink.traces import TRACES, TRACES_COLUMNS, trace_row
from streams.telemetry import Counters
from streams.warehouse import open_warehouse
from streams.warehouse.migrate import migrate
from streams.worker.faust_app import faust_app, raw_topic

log = logging.getLogger("tracepipe.bench.naive")

NAIVE_COMMAND = ("-m", "bench.naive_worker")
"""The arguments to the Python interpreter that run this worker (for WorkerProcess)."""

UNDECODABLE = "tracepipe_naive_undecodable_total"
"""Records that are not one span each (the harness stops when it sees any)."""


def main() -> int:
    """Run the naive worker until SIGINT/SIGTERM."""
    argparse.ArgumentParser(
        description=__doc__,
        epilog="Settings come from TRACEPIPE_* variables, as for `tracepipe worker`.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args()
    settings = load_settings()
    ensure_topics(settings.kafka)
    app = faust_app(settings)
    topics = TopicNames.from_prefix(settings.kafka.topic_prefix)
    warehouse = open_warehouse(settings.clickhouse)
    migrate(warehouse, settings.clickhouse.ttl_days)
    codec = AvroCodec("span")
    counters = Counters()
    traces: dict[str, list[Span]] = {}
    last_seen_ns: dict[str, int] = {}
    idle_ns = settings.assembly.trace_idle_ms * 1_000_000

    async def spans(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            # One span per message here: both counters, as the pipeline's span agent keeps them.
            counters.inc("tracepipe_spans_consumed_total", stage="naive")
            counters.inc("tracepipe_span_messages_consumed_total", stage="naive")
            message = event.message
            try:
                span = codec.decode(message.value, header_value(message.headers, SCHEMA_HEADER))
            except DecodeError as err:
                counters.inc(UNDECODABLE, reason=err.reason)
                log.warning("a record is not one span (%s): %s", err.reason, err.detail)
                continue
            warehouse.insert(OTEL_TRACES, OTEL_TRACES_COLUMNS, [span_row(span)])
            counters.inc("tracepipe_sink_rows_written_total", table=OTEL_TRACES)
            traces.setdefault(span["trace_id"], []).append(span)
            last_seen_ns[span["trace_id"]] = time.time_ns()

    async def emit_idle() -> None:
        now_ns = time.time_ns()
        for trace_id in [t for t, seen in last_seen_ns.items() if now_ns - seen >= idle_ns]:
            held = traces.pop(trace_id)
            del last_seen_ns[trace_id]
            has_root = any(not s["parent_span_id"] for s in held)
            record = build_trace_record(
                held,
                version=1,
                completion="complete" if has_root else "idle_no_root",
                emitted_at_unix_nano=time.time_ns(),
            )
            counters.inc("tracepipe_traces_emitted_total", completion=record["completion"])
            warehouse.insert(TRACES, TRACES_COLUMNS, [trace_row(record)])
            counters.inc("tracepipe_sink_rows_written_total", table=TRACES)

    app.agent(raw_topic(app, topics.spans, allow_empty=True), name="naive.spans")(spans)
    app.timer(settings.assembly.sweep_interval_ms / 1000, name="naive.emit-idle")(emit_idle)

    @app.page("/api/stats")
    async def stats(view: View, request: Request) -> Response:
        assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in app.assignor.assigned_actives())
        payload: dict[str, Any] = {
            "app_id": settings.worker.app_id,
            "assigned": assigned,
            "counters": counters.snapshot(),
            "assembly": {"open_traces": len(traces), "retained_traces": 0, "tombstones": 0},
        }
        return view.json(payload)

    del stats
    worker = faust.Worker(app, loglevel=settings.worker.log_level.upper(), quiet=True)
    try:
        worker.execute_from_commandline()
    finally:
        warehouse.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
