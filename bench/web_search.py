"""How long the web view's search page (`/ui/`) takes on a store of N spans (100,000 by
default): web-shop traces of the built-in topology spread over the last 50 minutes, stored in
a fresh chDB store as the worker stores them (spans in otel_traces, records in
tracepipe_traces), then each search timed `--runs` times through ReadOnlyReader, as the
worker serves the page. Prints the median and slowest time per search and saves them in
bench/results/web_search-<commit>.json. Not part of CI.

    python -m bench.web_search --spans 100000
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench.record import RESULTS, current_commit
from streams.assemble.record import build_trace_record
from streams.config import ClickHouseConfig, Settings
from streams.generate.generator import TraceGenerator
from streams.generate.incident import parse_incident
from streams.generate.topology import default_topology
from streams.query import ReadOnlyReader
from streams.query.web.search import search_page
from streams.sink.spans import OTEL_TRACES, OTEL_TRACES_COLUMNS, span_row
from streams.sink.traces import TRACES, TRACES_COLUMNS, trace_row
from streams.warehouse import open_warehouse
from streams.warehouse.migrate import migrate

SEARCHES: dict[str, dict[str, str]] = {
    "default (last hour, 20 newest)": {},
    "service": {"service": "checkout"},
    "service + operation": {"service": "payment", "operation": "Charge"},
    "tag (span attribute)": {"tags": "rpc.method=Charge"},
    "service + tag (resource attribute)": {
        "service": "frontend",
        "tags": "deployment.environment=webshop",
    },
    "errors only": {"errors": "1"},
    "min duration, 500 results": {"min_duration": "20ms", "limit": "500"},
}
SPREAD_NS = 50 * 60 * 1_000_000_000
BATCH_SPANS = 20_000


def fill(url: str, spans_wanted: int) -> tuple[int, int]:
    """Store web-shop traces until `spans_wanted` spans; return (spans, traces) stored."""
    warehouse = open_warehouse(ClickHouseConfig(url=url))
    try:
        migrate(warehouse, ttl_days=7)
        generator = TraceGenerator(
            default_topology(), seed=7, incidents=[parse_incident("inventory:errors=5%")]
        )
        now = time.time_ns()
        spans = records = 0
        rows: list[tuple[object, ...]] = []
        records_rows: list[tuple[object, ...]] = []
        i = 0
        while spans < spans_wanted:
            trace = generator.trace(now - SPREAD_NS + i * 3_000_000)
            i += 1
            rows.extend(span_row(s) for s in trace)
            record = build_trace_record(
                trace, version=1, completion="complete", emitted_at_unix_nano=now
            )
            records_rows.append(trace_row(record))
            spans += len(trace)
            records += 1
            if len(rows) >= BATCH_SPANS:
                warehouse.insert(OTEL_TRACES, OTEL_TRACES_COLUMNS, rows)
                warehouse.insert(TRACES, TRACES_COLUMNS, records_rows)
                rows, records_rows = [], []
        if rows:
            warehouse.insert(OTEL_TRACES, OTEL_TRACES_COLUMNS, rows)
            warehouse.insert(TRACES, TRACES_COLUMNS, records_rows)
        return spans, records
    finally:
        warehouse.close()


def main() -> None:
    """Fill a store, time each search, print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tracepipe-web-search-") as root:
        url = f"chdb://{Path(root) / 'store'}"
        spans, traces = fill(url, args.spans)
        warehouse = open_warehouse(ClickHouseConfig(url=url))
        try:
            reader = ReadOnlyReader(warehouse)
            settings = Settings()
            figures = {}
            for name, params in SEARCHES.items():
                times = []
                results = 0
                for _ in range(args.runs):
                    started = time.perf_counter()
                    page = search_page(reader, params, time.time_ns(), settings)
                    times.append((time.perf_counter() - started) * 1000)
                    assert page.status == 200, page.html
                    results = page.html.count('class="trace-link"')
                figures[name] = {
                    "median_ms": round(statistics.median(times), 1),
                    "max_ms": round(max(times), 1),
                    "results": results,
                }
                print(
                    f"{name:40} median {statistics.median(times):7.1f} ms  "
                    f"max {max(times):7.1f} ms  ({results} results)"
                )
        finally:
            warehouse.close()
    commit = current_commit()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"web_search-{commit}.json"
    payload = {
        "benchmark": "web_search",
        "commit": commit,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "spans": spans,
        "traces": traces,
        "runs": args.runs,
        "searches": figures,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"{spans:,} spans in {traces:,} traces; saved {path.name}")


if __name__ == "__main__":
    main()
