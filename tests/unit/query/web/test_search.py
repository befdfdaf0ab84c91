"""The search page: each filter against stored traces, newest first, the form's checks, and the
results linking to trace pages."""

from __future__ import annotations

import time

import pytest

from streams.config import Settings
from streams.model.span import Span, make_span
from streams.query.web.search import (
    MAX_LIMIT,
    TraceSearch,
    find_traces,
    resolve_search,
    search_page,
)
from streams.warehouse import Warehouse
from tests.unit.query.web.conftest import StoreTrace
from tests.unit.query.web.dom import select

MS = 1_000_000
MINUTE = 60_000_000_000
NOW = time.time_ns() // MS * MS
SETTINGS = Settings()


def trace(
    n: int, minutes_ago: int, duration_ms: int, services: list[str], error: bool = False
) -> list[Span]:
    """Trace n: a root in services[0], one child call per further service (`call <service>`)."""
    trace_id = f"{n:032x}"
    start = NOW - minutes_ago * MINUTE
    root = make_span(
        trace_id, f"{n:08x}00000000", "GET /", services[0], start, start + duration_ms * MS
    )
    children = [
        make_span(
            trace_id,
            f"{n:08x}{i:08x}",
            f"call {service}",
            service,
            start + MS,
            start + 2 * MS,
            parent_span_id=root["span_id"],
            status_code="ERROR" if error and i == 1 else "UNSET",
        )
        for i, service in enumerate(services[1:], start=1)
    ]
    return [root, *children]


@pytest.fixture
def stored(web_tables: Warehouse, store_trace: StoreTrace) -> Warehouse:
    store_trace(trace(1, 50, 20, ["web", "cart"]))
    store_trace(trace(2, 40, 300, ["web", "payment"], error=True))
    store_trace(trace(3, 30, 80, ["api", "cart", "payment"]))
    store_trace(trace(4, 90, 500, ["web", "cart"]))  # before the default hour
    return web_tables


def found(reader: Warehouse, **params: str) -> list[int]:
    query = resolve_search(TraceSearch.from_params(params), NOW)
    return [int(hit.trace_id, 16) for hit in find_traces(reader, query)]


def test_each_filter_and_newest_first(stored: Warehouse) -> None:
    assert found(stored) == [3, 2, 1]
    assert found(stored, since="2h") == [3, 2, 1, 4]
    assert found(stored, since="45m", until="35m") == [2]
    assert found(stored, service="cart") == [3, 1]
    assert found(stored, operation="call payment") == [3, 2]
    # The operation of a non-root span, in that service only.
    assert found(stored, service="payment", operation="call payment") == [3, 2]
    assert found(stored, service="web", operation="call payment") == []
    assert found(stored, min_duration="80ms") == [3, 2]
    assert found(stored, min_duration="0.1") == [2]  # bare seconds
    assert found(stored, errors="1") == [2]
    assert found(stored, limit="2") == [3, 2]
    assert found(stored, service="it's") == []  # quoted, not broken SQL


def test_hits_carry_the_assembled_summary(stored: Warehouse) -> None:
    (hit,) = find_traces(stored, resolve_search(TraceSearch(errors_only=True), NOW))
    assert (hit.root_service, hit.root_operation, hit.span_count, hit.error_count) == (
        "web",
        "GET /",
        2,
        1,
    )
    assert hit.services == ("payment", "web") and hit.duration_ns == 300 * MS
    assert hit.start_ns == NOW - 40 * MINUTE and hit.sampled


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"since": "yesterday"}, "time range: invalid time 'yesterday'"),
        ({"since": "5m", "until": "10m"}, "time range: since 5m"),
        ({"min_duration": "fast"}, "min duration: invalid duration 'fast'"),
        ({"limit": "0"}, f"limit: '0' should be a whole number from 1 to {MAX_LIMIT}"),
        ({"limit": str(MAX_LIMIT + 1)}, "limit:"),
        ({"limit": "ten"}, "limit:"),
    ],
)
def test_bad_input_says_which_field_and_how(
    web_tables: Warehouse, params: dict[str, str], says: str
) -> None:
    with pytest.raises(ValueError, match="^" + says.replace("(", r"\(")):
        resolve_search(TraceSearch.from_params(params), NOW)
    page = search_page(web_tables, params, NOW, SETTINGS)
    assert page.status == 400
    (problem,) = select(page.html, "div", "problem")
    assert says in problem.text
    # The form comes back with what was typed.
    values = {i.attrs["name"]: i.attrs.get("value") for i in select(page.html, "input")}
    for name, value in params.items():
        assert values[name] == value


def test_the_page_lists_results_linking_to_their_traces(stored: Warehouse) -> None:
    page = search_page(stored, {"service": "cart"}, NOW, SETTINGS)
    assert page.status == 200
    links = [a.attrs["href"] for a in select(page.html, "a", "trace-link")]
    assert links == [f"/ui/trace/{3:032x}", f"/ui/trace/{1:032x}"]
    rows = select(page.html, "tbody")[0].text
    assert "api: GET /" in rows and "web: GET /" in rows
    suggested = [o.attrs["value"] for o in select(page.html, "option")]
    # Every service of the range is suggested; operations of the chosen service only.
    assert {"api", "cart", "payment", "web"} <= set(suggested)
    assert "call cart" in suggested and "call payment" not in suggested
    (service,) = [i for i in select(page.html, "input") if i.attrs["name"] == "service"]
    assert service.attrs["value"] == "cart"


def test_no_match_says_when_traces_appear(stored: Warehouse) -> None:
    page = search_page(stored, {"service": "nobody"}, NOW, SETTINGS)
    assert page.status == 200
    (note,) = select(page.html, "p", "note")
    assert "No traces match" in note.text and "assembly.trace_idle_ms" in note.text
    assert not select(page.html, "a", "trace-link")


def test_hostile_service_names_are_escaped(web_tables: Warehouse, store_trace: StoreTrace) -> None:
    evil = "<script>alert(1)</script>"
    store_trace(trace(7, 5, 10, [evil, '"><img src=x>']))
    page = search_page(web_tables, {"service": evil}, NOW, SETTINGS)
    assert "<script>" not in page.html and "<img" not in page.html
    assert not [e for e in select(page.html) if e.tag in ("script", "img")]
    assert [a.text for a in select(page.html, "a", "trace-link")] == [f"{evil}: GET /"]
