"""Fixtures of the web view's tests: the module's chDB warehouse with the tables the pages read
emptied, and a way to store a trace the way the worker does (spans and the assembled record)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from streams.assemble.record import build_trace_record
from streams.model.span import Span
from streams.sink.spans import OTEL_TRACES, OTEL_TRACES_COLUMNS, span_row
from streams.sink.traces import TRACES, TRACES_COLUMNS, trace_row
from streams.sink.windows import EDGES, ERROR_ORIGIN_WINDOWS, LATENCY
from streams.warehouse import Warehouse

StoreTrace = Callable[..., None]


@pytest.fixture
def web_tables(migrated_warehouse: Warehouse) -> Warehouse:
    """The migrated warehouse with spans, traces and windows emptied."""
    for table in (OTEL_TRACES, TRACES, LATENCY, EDGES, ERROR_ORIGIN_WINDOWS):
        migrated_warehouse.execute(f"TRUNCATE TABLE {table}")
    return migrated_warehouse


@pytest.fixture
def store_trace(web_tables: Warehouse) -> StoreTrace:
    """Store a trace as the worker would: its spans in otel_traces (unless `spans_kept` is
    false, as tail sampling drops them) and its record in tracepipe_traces (if `assembled`)."""

    def store(spans: Sequence[Span], assembled: bool = True, spans_kept: bool = True) -> None:
        if spans_kept:
            web_tables.insert(OTEL_TRACES, OTEL_TRACES_COLUMNS, [span_row(s) for s in spans])
        if assembled:
            record = build_trace_record(
                list(spans), version=1, completion="complete", emitted_at_unix_nano=1
            )
            record["sampled"] = spans_kept
            record["sampling_policy"] = "probability" if not spans_kept else "sampling_off"
            web_tables.insert(TRACES, TRACES_COLUMNS, [trace_row(record)])

    return store
