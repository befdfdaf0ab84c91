"""Hostile values in the search page's tag filter and dropdowns: stored attribute keys and values
with quotes, backslashes, `'; DROP` and unicode are found exactly through the tags field, a
tags field typed raw is searched or refused with a 400 page but never runs as SQL, and the names
the page embeds for its dropdowns come back exactly. Pages read through ReadOnlyReader, as the
worker serves them."""

from __future__ import annotations

import json
import shlex
import time

import pytest

from streams.config import Settings
from streams.model.span import make_span
from streams.query import ReadOnlyReader
from streams.query.web.search import search_page
from streams.sink.spans import DEDUPLICATED_SPANS
from streams.warehouse import Warehouse
from tests.unit.query.web.conftest import StoreTrace
from tests.unit.query.web.dom import parse, select
from tests.unit.query.web.test_hostile_values import HOSTILE, _found, _trace_id

MS = 1_000_000
NOW = time.time_ns() // MS * MS
SETTINGS = Settings()


def _key(value: str) -> str:
    """The hostile value as an attribute key: `=` splits a tag, so a key has none."""
    return "k" + value.replace("=", "")


@pytest.fixture
def hostile(web_tables: Warehouse, store_trace: StoreTrace) -> ReadOnlyReader:
    """One trace per hostile value: a span attribute and a resource attribute keyed and valued
    by it, its service and operation named by it."""
    for n, value in enumerate(HOSTILE):
        start = NOW - (n + 1) * 1000 * MS
        store_trace(
            [
                make_span(
                    _trace_id(n),
                    f"{n + 1:016x}",
                    f"op {value}",
                    value,
                    start,
                    start + MS,
                    attributes={_key(value): value},
                    resource_attributes={"service.name": value, f"r{_key(value)}": f"r{value}"},
                )
            ]
        )
    return ReadOnlyReader(web_tables)


@pytest.mark.parametrize("n", range(len(HOSTILE)))
def test_tags_find_exactly_the_trace_of_a_hostile_attribute(
    hostile: ReadOnlyReader, n: int
) -> None:
    value = HOSTILE[n]
    span_tag = shlex.quote(f"{_key(value)}={value}")
    resource_tag = shlex.quote(f"r{_key(value)}=r{value}")
    assert _found(hostile, tags=span_tag) == [_trace_id(n)]
    assert _found(hostile, tags=resource_tag) == [_trace_id(n)]
    assert _found(hostile, tags=f"{span_tag} {resource_tag}", service=value) == [_trace_id(n)]
    assert _found(hostile, tags=shlex.quote(f"{_key(value)}={value}'")) == []
    assert _found(hostile, tags=shlex.quote(f"{_key(value)}'={value}")) == []


@pytest.mark.parametrize("value", HOSTILE)
def test_a_raw_hostile_tags_field_is_searched_or_refused_never_run(
    hostile: ReadOnlyReader, value: str
) -> None:
    spans = hostile.query_dicts(f"SELECT count() AS n FROM {DEDUPLICATED_SPANS}")
    for tags in (value, f"k={value}", f"{value}={value}", f"k='{value}"):
        page = search_page(hostile, {"tags": tags}, NOW, SETTINGS)
        assert page.status in (200, 400), page.html
        if page.status == 400:
            assert select(page.html, "div", "problem")[0].text.startswith("tags: ")
    assert hostile.query_dicts(f"SELECT count() AS n FROM {DEDUPLICATED_SPANS}") == spans


def test_the_dropdowns_and_their_embedded_pairs_keep_hostile_names_exactly(
    hostile: ReadOnlyReader,
) -> None:
    page = search_page(hostile, {"service": HOSTILE[3]}, NOW, SETTINGS).html
    elements = parse(page)
    (service,) = [e for e in elements if e.tag == "select" and e.attrs["name"] == "service"]
    offered = [e.attrs["value"] for e in elements if e.tag == "option" and service in e.ancestors]
    assert offered == ["", *sorted(HOSTILE)]
    (pairs,) = [s for s in select(page, "script") if s.attrs.get("type") == "application/json"]
    assert json.loads(pairs.text) == sorted([v, f"op {v}"] for v in HOSTILE)
    assert "</script" not in pairs.text.lower() and "<" not in pairs.text
