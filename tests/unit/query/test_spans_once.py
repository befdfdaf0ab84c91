"""Every reader of spans a user has returns each span once, however often it was stored: the
same batch twice (a retried insert) and an overlapping range batched differently (a batch
redelivered after a restart). Merges are stopped, so the copies are really there to hide.

Also: every SQL that reads otel_traces, in the code, the dashboard and the docs, reads it
through FINAL, the one way (`DEDUPLICATED_SPANS`)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from streams.assemble.record import build_trace_record
from streams.config import Settings
from streams.generate.generator import TraceGenerator
from streams.generate.topology import default_topology
from streams.model.span import Span
from streams.query import count_spans, quote, recent_spans
from streams.query.waterfall import render_error_origins, stored_spans, trace_report
from streams.query.web.search_query import (
    TraceSearch,
    find_traces,
    operations_seen,
    resolve_search,
)
from streams.query.web.trace import trace_page
from streams.sink.spans import (
    DEDUPLICATED_SPANS,
    OTEL_TRACES,
    OTEL_TRACES_COLUMNS,
    span_row,
)
from streams.sink.traces import TRACES, TRACES_COLUMNS, trace_row
from streams.warehouse import Warehouse
from tests.unit.query.web.test_trace import page_rows

S = 1_000_000_000
# Ten minutes ago: inside the web view's default range and the TTL.
T0 = (time.time_ns() - 600 * S) // S * S
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def traces(migrated_warehouse: Warehouse) -> dict[str, list[Span]]:
    """40 web-shop traces stored as a redelivering worker stores them: every span once, one
    batch of them again as it was, and the second half again in batches of another size."""
    generator = TraceGenerator(default_topology(), seed=11)
    traces = [generator.trace(T0 + i * S // 10) for i in range(40)]
    spans = [span for trace in traces for span in trace]
    rows = [span_row(s) for s in spans]
    warehouse = migrated_warehouse
    warehouse.execute(f"SYSTEM STOP MERGES {OTEL_TRACES}")
    first = rows[: len(rows) // 3]
    warehouse.insert(OTEL_TRACES, OTEL_TRACES_COLUMNS, first)
    warehouse.insert(OTEL_TRACES, OTEL_TRACES_COLUMNS, rows[len(first) :])
    warehouse.insert(OTEL_TRACES, OTEL_TRACES_COLUMNS, first[:50])
    for start in range(len(rows) // 2, len(rows), 37):
        warehouse.insert(OTEL_TRACES, OTEL_TRACES_COLUMNS, rows[start : start + 37])
    records = [
        build_trace_record(t, version=1, completion="complete", emitted_at_unix_nano=T0)
        for t in traces
    ]
    warehouse.insert(TRACES, TRACES_COLUMNS, [trace_row(r) for r in records])
    return {t[0]["trace_id"]: t for t in traces}


def span_ids(spans: list[Span]) -> list[str]:
    return sorted(s["span_id"] for s in spans)


def test_the_store_holds_copies(
    traces: dict[str, list[Span]], migrated_warehouse: Warehouse
) -> None:
    """Without this the other tests would prove nothing."""
    spans = sum(len(t) for t in traces.values())
    raw = migrated_warehouse.query(f"SELECT count() FROM {OTEL_TRACES}")[0][0]
    assert raw > spans + spans // 3


def test_span_counts_count_each_span_once(
    traces: dict[str, list[Span]], migrated_warehouse: Warehouse
) -> None:
    assert count_spans(migrated_warehouse) == sum(len(t) for t in traces.values())
    for trace_id, spans in traces.items():
        assert count_spans(migrated_warehouse, f"TraceId = {quote(trace_id)}") == len(spans)


def test_query_spans_lists_each_span_once(
    traces: dict[str, list[Span]], migrated_warehouse: Warehouse
) -> None:
    every = recent_spans(migrated_warehouse, None, None, 100_000)
    assert len(every) == len({(r["TraceId"], r["SpanId"]) for r in every})
    assert len(every) == sum(len(t) for t in traces.values())
    for trace_id, spans in traces.items():
        rows = recent_spans(migrated_warehouse, trace_id, None, 1000)
        assert sorted(r["SpanId"] for r in rows) == span_ids(spans)


def test_a_trace_reads_back_each_span_once(
    traces: dict[str, list[Span]], migrated_warehouse: Warehouse
) -> None:
    for trace_id, spans in traces.items():
        assert span_ids(stored_spans(migrated_warehouse, trace_id)) == span_ids(spans)
        report = trace_report(migrated_warehouse, trace_id)
        assert report is not None
        # A summary line and its warnings, the waterfall's two header lines, one line per span,
        # then the error origins' lines (if any span errored).
        lines = report.splitlines()
        warnings = sum(line.startswith("  warning:") for line in lines)
        origins = len(render_error_origins(spans).splitlines())
        assert len(lines) == 1 + warnings + 2 + len(spans) + origins


def test_the_trace_page_draws_each_span_once(
    traces: dict[str, list[Span]], migrated_warehouse: Warehouse
) -> None:
    trace_id, spans = next(iter(traces.items()))
    page = trace_page(migrated_warehouse, trace_id, "", Settings())
    assert page.status == 200
    drawn = [row["span_id"] for row in page_rows(page.html)]
    assert sorted(drawn) == sorted(span["span_id"] for span in spans)


def test_search_suggests_and_finds_once(
    traces: dict[str, list[Span]], migrated_warehouse: Warehouse
) -> None:
    now_ns = T0 + 600 * S
    search = TraceSearch(service="inventory", operation="SELECT stock", since="1h", limit="500")
    query = resolve_search(search, now_ns)
    hits = find_traces(migrated_warehouse, query)
    charged = {
        t
        for t, spans in traces.items()
        if any(s["service_name"] == "inventory" and s["name"] == "SELECT stock" for s in spans)
    }
    assert charged and sorted(h.trace_id for h in hits) == sorted(charged)
    # Span counts per service count each span once.
    for hit in hits:
        spans = traces[hit.trace_id]
        assert hit.spans_per_service == {
            service: sum(1 for s in spans if s["service_name"] == service)
            for service in {s["service_name"] for s in spans}
        }
    seen = operations_seen(migrated_warehouse, T0 - S, now_ns)
    assert len(seen) == len(set(seen))
    assert set(seen) == {(s["service_name"], s["name"]) for t in traces.values() for s in t}


# A read of otel_traces without FINAL (an alias goes before FINAL: `otel_traces AS s FINAL`).
_READS_OTEL_TRACES = re.compile(
    r"\b(?:FROM|JOIN)\s+otel_traces\b(?!_)(?!\s+FINAL\b)(?!\s+AS\s+\w+\s+FINAL\b)"
)


def raw_sql(node: object) -> list[str]:
    """Every rawSql string of a dashboard."""
    if isinstance(node, dict):
        return (
            [node["rawSql"]] if "rawSql" in node else [s for v in node.values() for s in raw_sql(v)]
        )
    if isinstance(node, list):
        return [s for v in node for s in raw_sql(v)]
    return []


def sql_texts() -> dict[str, str]:
    """Where a user meets SQL over otel_traces: the code, the dashboards, the README, examples."""
    texts = {str(p.relative_to(ROOT)): p.read_text() for p in (ROOT / "streams").rglob("*.py")}
    for doc in [ROOT / "README.md", *sorted((ROOT / "examples").rglob("*.md"))]:
        texts[str(doc.relative_to(ROOT))] = doc.read_text()
    for board in sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json")):
        texts[str(board.relative_to(ROOT))] = "\n".join(raw_sql(json.loads(board.read_text())))
    return texts


def test_every_read_of_otel_traces_says_final() -> None:
    unread = {
        name: match.group(0)
        for name, text in sql_texts().items()
        for match in _READS_OTEL_TRACES.finditer(text.replace("{OTEL_TRACES}", "otel_traces"))
    }
    assert unread == {}
    assert DEDUPLICATED_SPANS == "otel_traces FINAL"
