"""``/ui/trace/<id>/span/<span id>``: one span's details, fetched by the trace page's script when
the span opens. Laid out as on the page (skew-adjusted times, critical path); ids reach SQL only
as quoted values, a malformed one not at all; an unknown span is a 404 that says so."""

from __future__ import annotations

from typing import Any

import pytest

from streams.model.span import make_span
from streams.query import ReadOnlyReader, quote
from streams.query.web.trace_fetch import span_details
from streams.warehouse import Warehouse
from tests.unit.query.web.conftest import StoreTrace
from tests.unit.query.web.dom import parse, select
from tests.unit.query.web.test_trace import CHARGE, DB, MS, ROOT, T0, T, checkout_trace


class RecordingReader:
    """A read-only reader that keeps every statement it ran."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.reader = ReadOnlyReader(warehouse)
        self.statements: list[str] = []

    def query_dicts(self, sql: str) -> list[dict[str, Any]]:
        self.statements.append(sql)
        return self.reader.query_dicts(sql)


def detail_text(html: str) -> str:
    """The fragment's text, its top-level sections joined."""
    return "".join(e.text for e in parse(html) if not e.ancestors)


def test_the_details_are_the_span_as_the_page_lays_it_out(
    web_tables: Warehouse, store_trace: StoreTrace
) -> None:
    store_trace(checkout_trace())
    reader = RecordingReader(web_tables)
    details = span_details(reader, T.upper(), DB.upper())
    assert details.status == 200
    text = detail_text(details.html)
    assert "+10.0 ms" in text and "70.0 ms of its own time" in text and CHARGE in text
    (title,) = [h.text for h in select(details.html, "h3") if h.text == "Resource"]
    assert title == "Resource"
    # Values reach SQL only quoted: the ids as stored (lowercase), in quotes.
    assert all(quote(T) in sql for sql in reader.statements)
    assert [sql for sql in reader.statements if quote(DB) in sql]


def test_a_skewed_span_shows_its_adjusted_start(
    web_tables: Warehouse, store_trace: StoreTrace
) -> None:
    # The server's clock runs 50 ms behind: the page draws it inside its 10 ms client call.
    client = make_span(T, ROOT, "call", "web", T0, T0 + 10 * MS, kind="CLIENT")
    server = make_span(
        T,
        CHARGE,
        "serve",
        "api",
        T0 - 50 * MS,
        T0 - 46 * MS,
        parent_span_id=ROOT,
        kind="SERVER",
        events=[{"time_unix_nano": T0 - 48 * MS, "name": "cache miss", "attributes": {}}],
    )
    store_trace([client, server])
    text = detail_text(span_details(web_tables, T, CHARGE).html)
    assert "+3.00 ms" in text  # centred in the call, as on the page (stored: 50 ms before it)
    assert "+5.00 ms" in text and "cache miss" in text  # its event moved with it


def test_an_unknown_span_is_a_404_that_says_so(
    web_tables: Warehouse, store_trace: StoreTrace
) -> None:
    store_trace(checkout_trace())
    unknown = "9" * 16
    page = span_details(web_tables, T, unknown)
    assert page.status == 404
    (problem,) = select(page.html, "div", "problem")
    assert problem.text.startswith(f"Trace {T} has no span {unknown} stored: reload the trace")
    other = span_details(web_tables, "ef" * 16, ROOT)  # a span id of another trace
    assert other.status == 404


@pytest.mark.parametrize(
    ("trace_id", "span_id", "says"),
    [
        ("nope", ROOT, "is not a trace id"),
        (T, "'; DROP TABLE otel_traces; --", "is not a span id: give 16 hex digits"),
        (T, "1111111111111111' OR '1'='1", "is not a span id"),
        (T, ROOT + "00", "is not a span id"),
        (T, "", "is not a span id"),
    ],
)
def test_malformed_ids_are_a_400_and_reach_no_sql(
    web_tables: Warehouse, store_trace: StoreTrace, trace_id: str, span_id: str, says: str
) -> None:
    store_trace(checkout_trace())
    reader = RecordingReader(web_tables)
    page = span_details(reader, trace_id, span_id)
    assert page.status == 400
    (problem,) = select(page.html, "div", "problem")
    assert says in problem.text
    assert reader.statements == []
