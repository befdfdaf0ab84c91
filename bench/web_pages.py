"""Web view benchmark: how long the services and service-graph pages take to build on a store
holding the final windows of many spans (issue #16 asks < 300 ms for 100,000 spans).

Generates web-shop traces (`TraceGenerator`, default topology) spread over the last
`--seconds`, folds them into final windows as the worker does (latency windows from every span,
edge windows from every assembled trace's calls), stores those in a fresh chDB warehouse and
times each page's build (`services_page`, `graph_page`: every query and the HTML), the median
of `--repeat` builds after one warm-up.

    python -m bench.web_pages --spans 100000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

from bench.record import record_result
from streams.aggregate.merge import FinalWindow, final_record
from streams.aggregate.observations import (
    EDGE_DIMENSIONS,
    LATENCY_DIMENSIONS,
    edge_observations,
    latency_batch,
)
from streams.aggregate.window import WindowAggregator
from streams.assemble.record import build_trace_record
from streams.config import ClickHouseConfig, Settings
from streams.generate.generator import TraceGenerator
from streams.generate.topology import default_topology
from streams.model.column_codec import columns_from_spans
from streams.model.span import Span
from streams.query.web import Page
from streams.query.web.graph import graph_page
from streams.query.web.services import services_page
from streams.sink.windows import (
    EDGES,
    EDGES_COLUMNS,
    LATENCY,
    LATENCY_COLUMNS,
    edge_row,
    latency_row,
)
from streams.warehouse import Warehouse, open_warehouse
from streams.warehouse.migrate import migrate

WINDOW_MS = 10_000


def final_windows(
    aggregator: WindowAggregator, dimensions: Sequence[str], now_ns: int
) -> list[dict[str, Any]]:
    """Every window of the (one-partition) aggregator closed, as final window records."""
    closed, _ = aggregator.close_due([0], now_ns + 10 * WINDOW_MS * 1_000_000)
    return [
        final_record(
            FinalWindow(c.window_start_unix_nano, c.window_end_unix_nano, c.key, c.stats, 1),
            dimensions,
            now_ns,
        )
        for c in closed
    ]


def store_windows(warehouse: Warehouse, spans_wanted: int, seconds: int) -> dict[str, int]:
    """Fold `spans_wanted` generated spans over the last `seconds` into stored final windows."""
    generator = TraceGenerator(default_topology(), seed=1)
    now_ns = time.time_ns()
    start_ns = now_ns - seconds * 1_000_000_000
    latency = WindowAggregator(WINDOW_MS, 0, 3_600_000, 0.01, 5)
    edges = WindowAggregator(WINDOW_MS, 0, 3_600_000, 0.01, 5)
    spans = traces = 0
    while spans < spans_wanted:
        trace: list[Span] = generator.trace(
            start_ns + spans * seconds * 1_000_000_000 // spans_wanted
        )
        spans += len(trace)
        traces += 1
        latency.add(0, latency_batch(columns_from_spans(trace)), start_ns)
        record = build_trace_record(
            trace, version=1, completion="complete", emitted_at_unix_nano=now_ns
        )
        edges.add(0, edge_observations([record]), start_ns)
    latency_rows = [
        latency_row(cast(Any, r)) for r in final_windows(latency, LATENCY_DIMENSIONS, now_ns)
    ]
    edge_rows = [edge_row(cast(Any, r)) for r in final_windows(edges, EDGE_DIMENSIONS, now_ns)]
    warehouse.insert(LATENCY, LATENCY_COLUMNS, latency_rows)
    warehouse.insert(EDGES, EDGES_COLUMNS, edge_rows)
    return {
        "spans": spans,
        "traces": traces,
        "latency_windows": len(latency_rows),
        "edge_windows": len(edge_rows),
    }


def time_page(build: Callable[[], Page], repeat: int) -> dict[str, float]:
    """Median and slowest build time of a page in ms, after one warm-up build."""
    assert build().status == 200
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        build()
        times.append((time.perf_counter() - t0) * 1000)
    return {"median_ms": statistics.median(times), "max_ms": max(times)}


def main() -> None:
    """Run and record."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=3000, help="time the spans spread over")
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    settings = Settings()
    with tempfile.TemporaryDirectory() as data:
        warehouse = open_warehouse(ClickHouseConfig(url=f"chdb://{data}"))
        try:
            migrate(warehouse, ttl_days=7)
            stored = store_windows(warehouse, args.spans, args.seconds)
            params = {"since": "1h"}
            pages = {
                "services": lambda: services_page(warehouse, params, time.time_ns(), settings),
                "graph": lambda: graph_page(warehouse, params, time.time_ns(), settings),
            }
            timed = {name: time_page(build, args.repeat) for name, build in pages.items()}
        finally:
            warehouse.close()
    record_result(
        "web_pages",
        {
            **stored,
            "seconds": args.seconds,
            "pages": timed,
            "note": "page build in process on chDB (queries + HTML), median of "
            f"{args.repeat} after a warm-up; no HTTP; windows of {WINDOW_MS // 1000} s",
        },
    )


if __name__ == "__main__":
    main()
