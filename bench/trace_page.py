"""The web view's trace page on a large trace: server time and HTML size of ``/ui/trace/<id>``
for a 5,000-span trace (the 5,000-span trace of tests/unit/query/web/test_trace_tools.py, four
levels deep), in a chDB store filled to `--store-spans` spans with more such traces; also what
the page's script fetches (one leaf's details when it opens, find's texts when find is first
used), the OTLP JSON download and the comparison of two such traces. Times are medians of `--repeat`
builds on the calling thread (as the worker builds a page on its writer thread), from the
query to the finished HTML; the browser's side is printed by
tests/integration/web/test_browser_trace.py. Not part of CI.

    python -m bench.trace_page --spans 5000 --store-spans 100000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from bench.record import record_result
from streams.config import ClickHouseConfig, Settings
from streams.query.waterfall import stored_spans
from streams.query.web import Page
from streams.query.web.compare import compare_page
from streams.query.web.download import Download, trace_download
from streams.query.web.trace import trace_page
from streams.query.web.trace_fetch import find_text, span_details
from streams.sink.spans import OTEL_TRACES, OTEL_TRACES_COLUMNS, span_row
from streams.warehouse import open_warehouse
from streams.warehouse.migrate import migrate
from tests.unit.query.web.test_trace_tools import BIG, big_trace

OTHER = "bf" * 16


def _median_ms(build: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Median wall and CPU (the process's, chDB's threads included) ms of `build`, its result."""
    wall, cpu, result = [], [], None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = build()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000, result


def main() -> None:
    """Fill a fresh chDB store, time the pages, record the figures in bench/results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=5_000, help="spans of the trace shown")
    parser.add_argument(
        "--store-spans", type=int, default=100_000, help="spans in the store, at least 2x --spans"
    )
    parser.add_argument("--repeat", type=int, default=5, help="builds of each page timed")
    args = parser.parse_args()
    warehouse = open_warehouse(ClickHouseConfig(url=f"chdb://{tempfile.mkdtemp()}"))
    migrate(warehouse, ttl_days=7)
    stored = 0
    for n, trace_id in enumerate([BIG, OTHER, *(f"{k + 1:032x}" for k in range(10_000))]):
        if n >= 2 and stored + args.spans > args.store_spans:
            break
        spans = big_trace(trace_id, args.spans)
        warehouse.insert(OTEL_TRACES, OTEL_TRACES_COLUMNS, [span_row(s) for s in spans])
        stored += len(spans)
    settings = Settings()
    page_ms, page_cpu_ms, page = _median_ms(
        lambda: trace_page(warehouse, BIG, "", settings), args.repeat
    )
    leaf = stored_spans(warehouse, BIG)[-1]["span_id"]
    details_ms, _, details = _median_ms(lambda: span_details(warehouse, BIG, leaf), args.repeat)
    find_ms, _, texts = _median_ms(lambda: find_text(warehouse, BIG), args.repeat)
    download_ms, _, download = _median_ms(lambda: trace_download(warehouse, BIG), args.repeat)
    compare_ms, _, compared = _median_ms(
        lambda: compare_page(warehouse, {"a": BIG, "b": OTHER}), args.repeat
    )
    assert isinstance(page, Page) and page.status == 200
    assert isinstance(download, Download) and isinstance(compared, Page)
    assert isinstance(details, Page) and details.status == 200 and isinstance(texts, Download)
    result = {
        "trace_spans": args.spans,
        "store_spans": stored,
        "trace_page_ms": round(page_ms, 1),
        "trace_page_cpu_ms": round(page_cpu_ms, 1),
        "trace_page_html_bytes": len(page.html.encode()),
        "span_details_ms": round(details_ms, 1),
        "span_details_bytes": len(details.html.encode()),
        "find_text_ms": round(find_ms, 1),
        "find_text_bytes": len(texts.body),
        "download_ms": round(download_ms, 1),
        "download_bytes": len(download.body),
        "compare_ms": round(compare_ms, 1),
        "compare_html_bytes": len(compared.html.encode()),
        # The page's server CPU per span of the trace, as every benchmark here reports.
        "cpu_us_per_span": page_cpu_ms * 1000 / args.spans,
        "spans_per_s": args.spans / (page_ms / 1000),
    }
    record_result("trace_page", result)
    for key, value in result.items():
        print(f"  {key}: {value:,}" if isinstance(value, int) else f"  {key}: {value:.1f}")


if __name__ == "__main__":
    main()
