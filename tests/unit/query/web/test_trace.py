"""The trace page: waterfall layout (tree order, bars, critical-path stretches on skew-adjusted
times), the critical class on exactly the critical spans, span details, escaping, and the pages
that say why there is no trace."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from streams.config import Settings
from streams.model.span import Span, make_span
from streams.query.web.trace import trace_page
from streams.query.web.trace_fetch import span_details
from streams.query.web.trace_layout import ROW_FIELDS, layout_waterfall
from streams.query.web.trace_script import TRACE_SCRIPT
from streams.warehouse import Warehouse
from tests.unit.query.web.conftest import StoreTrace
from tests.unit.query.web.dom import Element, parse, select

T = "ab" * 16
MS = 1_000_000
# Two minutes ago, on a whole millisecond: inside the pages' default range and the TTL.
T0 = (time.time_ns() - 120_000_000_000) // MS * MS
ROOT, CACHE, CHARGE, DB = "1" * 16, "2" * 16, "3" * 16, "4" * 16
SETTINGS = Settings()


def checkout_trace(trace_id: str = T) -> list[Span]:
    """web GET / (100 ms) calls redis (1-5 ms) and payment charge (2-90 ms, failed), which
    queries a database (10-80 ms): the critical path is web, charge, db, charge, web."""
    return [
        make_span(trace_id, ROOT, "GET /", "web", T0, T0 + 100 * MS, kind="SERVER"),
        make_span(trace_id, CACHE, "cache", "redis", T0 + 1 * MS, T0 + 5 * MS, parent_span_id=ROOT),
        make_span(
            trace_id,
            CHARGE,
            "charge",
            "payment",
            T0 + 2 * MS,
            T0 + 90 * MS,
            parent_span_id=ROOT,
            kind="CLIENT",
            status_code="ERROR",
            status_message="card declined",
            attributes={"payment.amount": 42, "card.brand": "visa"},
            events=[
                {
                    "time_unix_nano": T0 + 85 * MS,
                    "name": "exception",
                    "attributes": {"exception.type": "Declined"},
                }
            ],
            links=[
                {"trace_id": "cd" * 16, "span_id": "5" * 16, "trace_state": "", "attributes": {}}
            ],
        ),
        make_span(
            trace_id, DB, "SELECT", "payment", T0 + 10 * MS, T0 + 80 * MS, parent_span_id=CHARGE
        ),
    ]


def page_data(html: str) -> dict[str, Any]:
    """The waterfall's data the page's script draws from (trace.waterfall_data)."""
    (script,) = [e for e in parse(html) if e.attrs.get("id") == "trace-data"]
    assert script.tag == "script" and script.attrs["type"] == "application/json"
    data: dict[str, Any] = json.loads(script.text)
    return data


def page_rows(html: str) -> list[dict[str, Any]]:
    """The waterfall's rows by ROW_FIELDS' names, service and name resolved, classes a set."""
    data = page_data(html)
    return [
        {
            **dict(zip(ROW_FIELDS, row, strict=True)),
            "service": data["services"][row[2]][0],
            "name": data["names"][row[3]],
            "classes": set(row[7].split()),
        }
        for row in data["rows"]
    ]


def test_layout_is_tree_ordered_with_bars_and_critical_stretches_in_percent() -> None:
    spans = checkout_trace()
    waterfall = layout_waterfall([spans[3], spans[2], spans[0], spans[1]])
    assert waterfall.start_ns == T0 and waterfall.duration_ns == 100 * MS
    assert not waterfall.skew_adjusted
    layout = {
        row.span["span_id"]: (row.depth, row.left_pct, row.width_pct, row.critical, row.critical_ns)
        for row in waterfall.rows
    }
    assert [row.span["span_id"] for row in waterfall.rows] == [ROOT, CACHE, CHARGE, DB]
    assert layout[ROOT] == (0, 0, 100, ((0, 2), (90, 10)), 12 * MS)
    assert layout[CACHE] == (1, 1, 4, (), 0)  # parallel with charge: off the path
    assert layout[CHARGE] == (1, 2, 88, ((2, 8), (80, 10)), 18 * MS)
    assert layout[DB] == (2, 10, 70, ((10, 70),), 70 * MS)
    assert [(t["service"], t["operation"], t["self_time_ns"]) for t in waterfall.self_time] == [
        ("payment", "SELECT", 70 * MS),
        ("payment", "charge", 18 * MS),
        ("web", "GET /", 12 * MS),
    ]


def test_a_skewed_server_span_is_drawn_inside_its_client_call() -> None:
    client = make_span(T, ROOT, "call", "web", T0, T0 + 10 * MS, kind="CLIENT")
    # The server's host clock runs 50 ms behind: its span seems to start before the call.
    server = make_span(
        T, CACHE, "serve", "api", T0 - 50 * MS, T0 - 46 * MS, parent_span_id=ROOT, kind="SERVER"
    )
    waterfall = layout_waterfall([client, server])
    assert waterfall.skew_adjusted
    row = {r.span["span_id"]: r for r in waterfall.rows}[CACHE]
    assert row.left_pct == 30 and row.width_pct == 40  # centred in the 10 ms call
    assert waterfall.start_ns == T0 and waterfall.duration_ns == 10 * MS


def test_the_page_marks_exactly_the_critical_spans_and_errors(
    web_tables: Warehouse, store_trace: StoreTrace
) -> None:
    store_trace(checkout_trace())
    page = trace_page(web_tables, T, "", SETTINGS)
    assert page.status == 200
    rows = page_rows(page.html)
    assert [r["span_id"] for r in rows] == [ROOT, CACHE, CHARGE, DB]
    assert [(r["depth"], r["service"], r["name"]) for r in rows] == [
        (0, "web", "GET /"),
        (1, "redis", "cache"),
        (1, "payment", "charge"),
        (2, "payment", "SELECT"),
    ]
    assert {r["span_id"] for r in rows if "critical" in r["classes"]} == {ROOT, CHARGE, DB}
    assert [r["span_id"] for r in rows if "error" in r["classes"]] == [CHARGE]
    # Bars and stretches as laid out: root twice, charge twice, db once.
    assert [(r["left_pct"], r["width_pct"], r["critical"]) for r in rows] == [
        (0, 100, [0, 2, 90, 10]),
        (1, 4, []),
        (2, 88, [2, 8, 80, 10]),
        (10, 70, [10, 70]),
    ]
    assert [r["duration_ms"] for r in rows] == ["100", "4.00", "88.0", "70.0"]
    assert page_data(page.html)["open"] == ""
    (heading,) = select(page.html, "h1")
    assert heading.text.startswith("web: GET /")


def test_span_details_show_status_attributes_events_links_and_resource(
    web_tables: Warehouse, store_trace: StoreTrace
) -> None:
    store_trace(checkout_trace())
    page = trace_page(web_tables, T.upper(), CHARGE, SETTINGS)
    data = page_data(page.html)
    assert data["open"] == CHARGE  # the script opens it, and so fetches its details
    assert data["span_url"] == f"/ui/trace/{T}/span/"
    # The details are not in the page: they come when the span opens.
    assert "payment.amount" not in page.html and "Declined" not in page.html
    details = span_details(web_tables, T.upper(), CHARGE)
    assert details.status == 200
    detail = "".join(e.text for e in parse(details.html) if not e.ancestors)
    for shown in (
        "ERROR: card declined",
        "payment.amount",
        "42",
        "card.brand",
        "visa",
        "+85.0 ms",  # the event, from the trace's start
        "exception",
        "Declined",
        "cd" * 16,
        "service.name",
        "18.0 ms of its own time",
        "CLIENT",
    ):
        assert shown in detail, shown
    links = [a.attrs["href"] for a in select(details.html, "a") if a.ancestors[-1].tag == "td"]
    assert f"/ui/trace/{'cd' * 16}" in links


def test_hostile_names_and_values_are_escaped(
    web_tables: Warehouse, store_trace: StoreTrace
) -> None:
    evil = '<script>alert("x")</script>'
    spans = [
        make_span(
            T,
            ROOT,
            evil,
            '"><img src=x onerror=alert(1)>',
            T0,
            T0 + MS,
            status_code="ERROR",
            status_message=evil,
            attributes={evil: evil},
            events=[{"time_unix_nano": T0, "name": evil, "attributes": {evil: evil}}],
        )
    ]
    store_trace(spans)
    page = trace_page(web_tables, T, "", SETTINGS)
    assert page.status == 200
    # Two scripts: the page's own (its text fixed) and the rows' data, which no value closes.
    assert page.html.count("<script") == 2 and "<img" not in page.html
    assert page.html.count("</script") == 2
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page.html  # the heading
    scripts = [e for e in select(page.html) if e.tag in ("script", "img")]
    assert [s.attrs.get("id") for s in scripts] == ["trace-data", None]
    assert scripts[1].text == TRACE_SCRIPT
    (row,) = page_rows(page.html)
    assert (row["service"], row["name"]) == ('"><img src=x onerror=alert(1)>', evil)
    details = span_details(web_tables, T, ROOT)
    assert "<script" not in details.html and "<img" not in details.html
    # operation, status message, attribute key and value, event name, its key and value
    assert details.html.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;") == 7


def test_a_trace_not_assembled_yet_shows_the_spans_stored_so_far(
    web_tables: Warehouse, store_trace: StoreTrace
) -> None:
    store_trace(checkout_trace()[:2], assembled=False)
    page = trace_page(web_tables, T, "", SETTINGS)
    assert page.status == 200
    assert "not assembled yet" in page.html
    assert len(page_rows(page.html)) == 2


@pytest.mark.parametrize(
    ("trace_id", "status", "says"),
    [
        ("nope", 400, "32 hex digits, or 16 for a 64-bit id"),
        ("ab" * 17, 400, "32 hex digits, or 16 for a 64-bit id"),
        ("ef" * 16, 404, "No spans are stored for trace"),
        ("EF" * 8, 404, f"No spans are stored for trace {'0' * 16}{'ef' * 8}"),
    ],
)
def test_missing_or_malformed_ids_get_a_page_that_says_what_to_do(
    web_tables: Warehouse, trace_id: str, status: int, says: str
) -> None:
    page = trace_page(web_tables, trace_id, "", SETTINGS)
    assert page.status == status
    (problem,) = select(page.html, "div", "problem")
    assert says in problem.text
    assert any(a.attrs["href"] == "/ui/" for a in select(page.html, "a"))


def test_a_sampled_out_trace_says_sampling_dropped_its_spans(
    web_tables: Warehouse, store_trace: StoreTrace
) -> None:
    store_trace(checkout_trace(), spans_kept=False)
    page = trace_page(web_tables, T, "", SETTINGS)
    assert page.status == 404
    (problem,) = select(page.html, "div", "problem")
    assert "tail sampling did not keep its spans (policy probability)" in problem.text
    assert "sampling.probability" in problem.text


def origin_rows(elements: list[Element]) -> list[Element]:
    """Rows of the page's tables (not of the span details) that name the charge's failure."""
    return [
        r
        for r in elements
        if r.tag == "tr"
        and "card declined" in r.text
        and not any(a.tag == "details" for a in r.ancestors)
    ]


def test_the_page_shows_where_errors_began_and_how_far_they_went(
    web_tables: Warehouse, store_trace: StoreTrace
) -> None:
    # As stored: payment's charge failed and web handled it (the root is OK).
    store_trace(checkout_trace())
    page = trace_page(web_tables, T, "", SETTINGS)
    rows = page_rows(page.html)
    assert [r["span_id"] for r in rows if "error-origin" in r["classes"]] == [CHARGE]
    assert [h.text for h in select(page.html, "h2")][-1] == "Error origins"
    (origin,) = origin_rows(parse(page.html))
    assert "charge" in origin.text and "(handled by its caller)" in origin.text
    (link,) = [a for a in select(page.html, "a") if a.attrs.get("href") == f"#span-{CHARGE}"]
    assert link.text == "charge"

    # The same failure, now reaching the root: it propagated to web.
    other = "cd" * 16
    spans = checkout_trace(other)
    spans[0] = {**spans[0], "status_code": "ERROR"}
    store_trace(spans)
    page = trace_page(web_tables, other, "", SETTINGS)
    elements = parse(page.html)
    (origin,) = origin_rows(elements)
    cells = [c.text for c in elements if c.tag == "td" and c.ancestors[-1:] == [origin]]
    assert cells[1:3] == ["web", "yes"]

    # No error, no section.
    fine = "ef" * 16
    spans = checkout_trace(fine)
    spans[2] = {**spans[2], "status_code": "UNSET", "status_message": ""}
    store_trace(spans)
    page = trace_page(web_tables, fine, "", SETTINGS)
    assert "Error origins" not in [h.text for h in select(page.html, "h2")]
    assert not [r for r in page_rows(page.html) if "error-origin" in r["classes"]]
