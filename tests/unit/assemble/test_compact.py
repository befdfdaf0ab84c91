"""Compact held spans decode to the same spans, sharing what repeats."""

from __future__ import annotations

import gc
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from streams.assemble.compact import CompactSpans
from streams.assemble.edges import GRAPH_ATTRIBUTES
from streams.assemble.record import build_trace_record
from streams.generate.generator import TraceGenerator
from streams.generate.topology import default_topology
from streams.model.column_codec import columns_from_spans
from streams.model.span import (
    ATTRIBUTES,
    LINKS,
    RESOURCE_ATTRIBUTES,
    TRACE_ID,
    SpanRow,
    make_span,
    span_from_row,
)

attrs = st.dictionaries(
    st.text(max_size=5),
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.text(max_size=5),
        st.lists(st.integers(0, 9), max_size=3),
    ),
    max_size=4,
)


@given(attrs, attrs)
def test_round_trip(resource: dict[str, object], attributes: dict[str, object]) -> None:
    span = make_span(
        "a" * 32,
        "b" * 16,
        "op",
        "svc",
        1,
        2,
        resource_attributes=resource,
        attributes=attributes,
        events=[{"time_unix_nano": 1, "name": "e", "attributes": {}}],
    )
    codec = CompactSpans()
    assert span_from_row(codec.encode(span)) == span


def test_equal_resources_are_held_once_and_lists_are_fresh() -> None:
    codec = CompactSpans()
    a = codec.encode(
        make_span(
            "a" * 32,
            "1" * 16,
            "op",
            "svc",
            1,
            2,
            resource_attributes={"service.name": "svc", "host": "h1"},
        )
    )
    b = codec.encode(
        make_span(
            "a" * 32,
            "2" * 16,
            "op",
            "svc",
            1,
            2,
            resource_attributes={"service.name": "svc", "host": "h1"},
        )
    )
    first, second = span_from_row(a), span_from_row(b)
    assert first["resource_attributes"] is second["resource_attributes"]
    assert first["events"] == [] and first["events"] is not second["events"]


def test_rows_without_what_no_analysis_reads_give_the_same_trace_records() -> None:
    generator = TraceGenerator(default_topology(), seed=3, id_seed=3)
    traces = [generator.trace(1_700_000_000_000_000_000 + i * 1_000_000) for i in range(300)]
    columns = columns_from_spans([s for t in traces for s in t])
    whole, slim = CompactSpans(), CompactSpans(whole=False)
    by_trace: dict[str, tuple[list[SpanRow], list[SpanRow]]] = {}
    for a, b in zip(whole.encode_columns(columns), slim.encode_columns(columns), strict=True):
        pair = by_trace.setdefault(a[TRACE_ID], ([], []))
        pair[0].append(a)
        pair[1].append(b)
    kept = {k for rows in by_trace.values() for row in rows[1] for k in row[ATTRIBUTES] or ()}
    assert kept and kept <= GRAPH_ATTRIBUTES
    calls = 0
    for whole_rows, slim_rows in by_trace.values():
        options: dict[str, Any] = {"version": 1, "completion": "complete", "include_spans": False}
        expected = build_trace_record(whole_rows, emitted_at_unix_nano=1, **options)
        got = build_trace_record(slim_rows, emitted_at_unix_nano=1, **options)
        assert got == expected
        calls += len(got["calls"])
    assert calls > 300


def test_slim_rows_without_graph_attributes_leave_the_garbage_collectors_scans() -> None:
    # Held rows are most of what a gen-1 collection scans; a tuple holding any dict stays
    # tracked for good, one of atoms is untracked at its first collection.
    generator = TraceGenerator(default_topology(), seed=4, id_seed=4)
    spans = [s for i in range(50) for s in generator.trace(1_700_000_000_000_000_000 + i)]
    rows = CompactSpans(whole=False).encode_columns(columns_from_spans(spans))
    gc.collect()
    plain = [row for row in rows if row[ATTRIBUTES] is None and row[LINKS] is None]
    assert len(plain) > len(rows) // 3
    assert not any(gc.is_tracked(row) for row in plain)
    with_graph = [row for row in rows if row[ATTRIBUTES]]
    assert with_graph and set().union(*(row[ATTRIBUTES] for row in with_graph)) <= GRAPH_ATTRIBUTES
    assert all(row[RESOURCE_ATTRIBUTES] is None for row in rows)
    whole = CompactSpans().encode_columns(columns_from_spans(spans))
    assert all(isinstance(row[RESOURCE_ATTRIBUTES], dict) for row in whole)
