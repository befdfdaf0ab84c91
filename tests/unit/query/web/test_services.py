"""The services page: RED per service and per operation from stored latency windows, error
rates from 1% in red, slowest traces linked, where each service's errors originate, escaping,
and the empty and bad-range pages."""

from __future__ import annotations

import time

from streams.config import Settings
from streams.query.web.services import services_page
from streams.sink.windows import ERROR_ORIGIN_WINDOWS, ERROR_ORIGIN_WINDOWS_COLUMNS
from streams.warehouse import Warehouse
from tests.unit.query.test_windows import MS, T0, WINDOW_NS, latency, store
from tests.unit.query.web.dom import parse, select

SETTINGS = Settings()


def table_rows(page: str, index: int) -> list[list[str]]:
    """The text of each body cell of the page's `index`-th data table."""
    elements = parse(page)
    table = [e for e in elements if e.tag == "table" and "data" in e.classes][index]
    rows = [
        e
        for e in elements
        if e.tag == "tr" and table in e.ancestors and e.ancestors[-1].tag == "tbody"
    ]
    return [
        [td.text.strip() for td in elements if td.tag == "td" and td.ancestors[-1] is tr]
        for tr in rows
    ]


def test_services_and_operations_with_red_numbers(web_tables: Warehouse) -> None:
    store(
        web_tables,
        latency([10 * MS] * 90 + [200 * MS] * 10, key=("cart", "GET /cart", "SERVER", "ok")),
        latency([300 * MS] * 5, key=("cart", "GET /cart", "SERVER", "error"), errors=5),
        latency([2 * MS] * 50, key=("cart", "SELECT", "CLIENT", "ok")),
        latency([1 * MS] * 1000, key=("web", "GET /", "SERVER", "ok")),
    )
    page = services_page(web_tables, {"since": "1h"}, time.time_ns(), SETTINGS)
    assert page.status == 200
    services = table_rows(page.html, 0)
    assert [(r[0], r[1], r[3]) for r in services] == [("cart", "105", "4.76"), ("web", "1000", "0")]
    operations = table_rows(page.html, 1)
    # Rates are over the one window stored (10 s), not the hour asked for, and say so.
    assert [r[:5] for r in operations] == [
        ["cart", "GET /cart", "Server", "105", "10.5"],
        ["cart", "SELECT", "Client", "50", "5.00"],
        ["web", "GET /", "Server", "1000", "100"],
    ]
    (coverage,) = [e for e in parse(page.html) if e.attrs.get("id") == "coverage"]
    assert coverage.text.startswith("rates over 10s of data, ")
    assert operations[0][5] == "4.76"  # error %
    bad = [td.text for td in select(page.html, "td", "bad")]
    assert bad == ["4.76", "4.76"]  # cart's service row and its GET /cart, nothing of web
    # The slowest exemplar of GET /cart is one of its 300 ms errors, linked to its trace page.
    slowest = [a.attrs["href"] for a in select(page.html, "a", "mono")]
    assert slowest[0] == f"/ui/trace/{300 * MS:032x}"
    searches = [a.attrs["href"] for a in select(page.html, "a") if "operation=" in a.attrs["href"]]
    assert searches[0] == "/ui/?service=cart&operation=GET+%2Fcart"


def origin_window(
    window: int, seen_at: tuple[str, str], origin: tuple[str, str], traces: int, emitted: int = 1
) -> tuple[object, ...]:
    """A tracepipe_error_origin_windows row; origin ("", "") is the count of error traces."""
    start = T0 + window * WINDOW_NS
    return (start, start + WINDOW_NS, *seen_at, *origin, traces, [f"{traces:032x}"], emitted)


def test_each_service_says_where_its_errors_originate(web_tables: Warehouse) -> None:
    store(
        web_tables,
        latency([10 * MS] * 10, key=("checkout", "POST /checkout", "SERVER", "error"), errors=10),
        latency([2 * MS] * 8, key=("inventory", "Reserve", "SERVER", "error"), errors=8),
        latency([MS] * 100, key=("web", "GET /", "SERVER", "ok")),
    )
    post, reserve, nothing = ("checkout", "POST /checkout"), ("inventory", "Reserve"), ("", "")
    web_tables.insert(
        ERROR_ORIGIN_WINDOWS,
        ERROR_ORIGIN_WINDOWS_COLUMNS,
        [
            # checkout erred in 10 traces over two windows: 8 originated in inventory/Reserve.
            origin_window(0, post, nothing, 5),
            origin_window(0, post, reserve, 4),
            origin_window(0, post, ("checkout", "validate"), 1),
            origin_window(1, post, nothing, 5),
            origin_window(1, post, reserve, 1, emitted=0),  # replaced by the row below: FINAL
            origin_window(1, post, reserve, 4),
            origin_window(1, post, ("payments", "Charge"), 1),
            origin_window(0, reserve, nothing, 8),
            origin_window(0, reserve, reserve, 8),
            # Before the page's hour: not counted.
            origin_window(-400, post, nothing, 50),
            origin_window(-400, post, ("payments", "Charge"), 50),
        ],
    )
    page = services_page(web_tables, {"since": "1h"}, time.time_ns(), SETTINGS)
    services = table_rows(page.html, 0)
    assert [(r[0], r[-1]) for r in services] == [
        ("checkout", "80% from inventory/Reserve"),
        ("inventory", "100% from inventory/Reserve"),
        ("web", ""),  # no errors: nothing
    ]
    links = [a.attrs["href"] for a in select(page.html, "a", "origin")]
    assert links == ["/ui/?since=1h&service=inventory&errors=1"] * 2


def test_hostile_names_are_escaped(web_tables: Warehouse) -> None:
    evil = "<script>alert(1)</script>"
    store(web_tables, latency([MS], key=(evil, f'"><img src=x>{evil}', "SERVER", "ok")))
    page = services_page(web_tables, {}, time.time_ns(), SETTINGS)
    assert "<script>" not in page.html and "<img" not in page.html
    assert table_rows(page.html, 1)[0][:2] == [evil, f'"><img src=x>{evil}']


def test_no_windows_says_when_they_appear(web_tables: Warehouse) -> None:
    page = services_page(web_tables, {"since": "5m"}, time.time_ns(), SETTINGS)
    assert page.status == 200
    (note,) = select(page.html, "p", "note")
    assert "No final latency windows" in note.text
    assert "window + allowed lateness (10 s + 30 s)" in note.text


def test_a_bad_range_gives_the_form_back_with_the_problem(web_tables: Warehouse) -> None:
    page = services_page(web_tables, {"since": "soon", "until": "now"}, time.time_ns(), SETTINGS)
    assert page.status == 400
    (problem,) = select(page.html, "div", "problem")
    assert "invalid time 'soon'" in problem.text
    values = {i.attrs["name"]: i.attrs["value"] for i in select(page.html, "input")}
    assert values == {"since": "soon", "until": "now"}
