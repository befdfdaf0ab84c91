"""Hostile values in every field of every page: stored names with quotes, backslashes, `'; DROP`
and unicode are found exactly, other fields are refused with a 400/404 page, never run as SQL.
The pages read through ReadOnlyReader, as the worker serves them (one read-only statement under
readonly=1)."""

from __future__ import annotations

import time

import pytest

from streams.config import Settings
from streams.model.span import make_span
from streams.query import ReadOnlyReader
from streams.query.web.graph import graph_page
from streams.query.web.search import search_page
from streams.query.web.services import services_page
from streams.query.web.trace import trace_page
from streams.sink.spans import DEDUPLICATED_SPANS
from streams.warehouse import Warehouse
from tests.unit.query.web.conftest import StoreTrace
from tests.unit.query.web.dom import select

MS = 1_000_000
NOW = time.time_ns() // MS * MS
SETTINGS = Settings()

HOSTILE = [
    "'",
    "\\",
    "\\'",
    "'; DROP TABLE otel_traces; --",
    "' OR '1'='1",
    "x' INTO OUTFILE '/tmp/tracepipe-hostile",
    "a\x00b",
    "é 中文 😀 \u202e",
    "line\nbreak",
    '`"$$/* --',
]


def _trace_id(n: int) -> str:
    return f"{n + 1:032x}"


@pytest.fixture
def hostile(web_tables: Warehouse, store_trace: StoreTrace) -> ReadOnlyReader:
    """One trace per hostile value, named by it: service `value`, operation `op value`."""
    for n, value in enumerate(HOSTILE):
        start = NOW - (n + 1) * 1000 * MS
        store_trace(
            [make_span(_trace_id(n), f"{n + 1:016x}", f"op {value}", value, start, start + MS)]
        )
    return ReadOnlyReader(web_tables)


def _found(reader: ReadOnlyReader, **params: str) -> list[str]:
    page = search_page(reader, params, NOW, SETTINGS)
    assert page.status == 200, page.html
    return [a.attrs["href"].rsplit("/", 1)[-1] for a in select(page.html, "a", "trace-link")]


@pytest.mark.parametrize("n", range(len(HOSTILE)))
def test_search_finds_exactly_the_trace_of_a_hostile_name(hostile: ReadOnlyReader, n: int) -> None:
    value = HOSTILE[n]
    assert _found(hostile, service=value) == [_trace_id(n)]
    assert _found(hostile, operation=f"op {value}") == [_trace_id(n)]
    assert _found(hostile, service=value, operation=f"op {value}") == [_trace_id(n)]
    assert _found(hostile, service=f"{value}'", operation=f"op {value}") == []


@pytest.mark.parametrize("value", HOSTILE)
def test_every_other_field_refuses_a_hostile_value(hostile: ReadOnlyReader, value: str) -> None:
    spans = hostile.query_dicts(f"SELECT count() AS n FROM {DEDUPLICATED_SPANS}")
    pages = [
        *(
            search_page(hostile, {field: value}, NOW, SETTINGS)
            for field in ("min_duration", "since", "until", "limit")
        ),
        *(
            page(hostile, {field: value}, NOW, SETTINGS)
            for page in (services_page, graph_page)
            for field in ("since", "until")
        ),
        trace_page(hostile, value, "", SETTINGS),
    ]
    assert [p.status for p in pages] == [400] * len(pages)
    # `errors` is a checkbox: any value other than on/1/true is off, and the search runs.
    assert search_page(hostile, {"errors": value}, NOW, SETTINGS).status == 200
    # The span id to open is only compared with the trace's span ids.
    opened = trace_page(hostile, _trace_id(0), value, SETTINGS)
    assert opened.status == 200
    assert hostile.query_dicts(f"SELECT count() AS n FROM {DEDUPLICATED_SPANS}") == spans
