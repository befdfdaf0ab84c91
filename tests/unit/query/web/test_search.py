"""The search page: each filter against stored traces, newest first, the form's checks, and the
results linking to trace pages."""

from __future__ import annotations

import json
import time

import pytest

from streams.config import Settings
from streams.model.span import Span, make_span
from streams.query.web.search import search_page
from streams.query.web.search_plot import (
    PLOT_BOTTOM,
    PLOT_HEIGHT,
    PLOT_LEFT,
    PLOT_RIGHT,
    PLOT_TOP,
    PLOT_WIDTH,
    nice_ceiling,
)
from streams.query.web.search_query import (
    MAX_LIMIT,
    MAX_TAGS,
    TraceSearch,
    find_traces,
    resolve_search,
)
from streams.warehouse import Warehouse
from tests.unit.query.web.conftest import StoreTrace
from tests.unit.query.web.dom import parse, select

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


def options(page: str, name: str) -> tuple[list[str], str]:
    """The option values of the form's dropdown `name`, and the selected one."""
    elements = parse(page)
    (dropdown,) = [e for e in elements if e.tag == "select" and e.attrs["name"] == name]
    values = [e for e in elements if e.tag == "option" and dropdown in e.ancestors]
    chosen = [o.attrs["value"] for o in values if "selected" in o.attrs]
    return [o.attrs["value"] for o in values], (chosen[0] if chosen else "")


def test_the_page_lists_results_linking_to_their_traces(stored: Warehouse) -> None:
    page = search_page(stored, {"service": "cart"}, NOW, SETTINGS)
    assert page.status == 200
    links = [a.attrs["href"] for a in select(page.html, "a", "trace-link")]
    assert links == [f"/ui/trace/{3:032x}", f"/ui/trace/{1:032x}"]
    rows = select(page.html, "tbody")[0].text
    assert "api: GET /" in rows and "web: GET /" in rows


def test_dropdowns_offer_the_services_and_the_chosen_services_operations(
    stored: Warehouse,
) -> None:
    page = search_page(stored, {}, NOW, SETTINGS).html
    # "any" first, then every service with spans in the range (trace 4's are older: its
    # services are here through the newer traces only).
    assert options(page, "service") == (["", "api", "cart", "payment", "web"], "")
    assert options(page, "operation") == (["", "GET /", "call cart", "call payment"], "")
    page = search_page(stored, {"service": "cart"}, NOW, SETTINGS).html
    assert options(page, "service")[1] == "cart"
    assert options(page, "operation") == (["", "call cart"], "")
    page = search_page(stored, {"service": "web", "operation": "GET /"}, NOW, SETTINGS).html
    assert options(page, "operation") == (["", "GET /"], "GET /")
    # What the URL names stays chosen even when the range has no such span.
    page = search_page(stored, {"service": "gone", "operation": "old"}, NOW, SETTINGS).html
    assert options(page, "service") == (["", "api", "cart", "gone", "payment", "web"], "gone")
    assert options(page, "operation") == (["", "old"], "old")
    # The browser's rule for the operation dropdown gets every (service, operation) pair.
    (pairs,) = [s for s in select(page, "script") if s.attrs.get("type") == "application/json"]
    assert json.loads(pairs.text) == [
        ["api", "GET /"],
        ["cart", "call cart"],
        ["payment", "call payment"],
        ["web", "GET /"],
    ]


def test_each_result_lists_its_services_with_their_span_counts(
    web_tables: Warehouse, store_trace: StoreTrace
) -> None:
    store_trace(trace(5, 5, 40, ["web", "cart", "cart", "payment"]))
    store_trace(trace(6, 4, 40, ["api", "api"]), spans_kept=False)
    (sampled_out, hit) = find_traces(web_tables, resolve_search(TraceSearch(), NOW))
    assert hit.spans_per_service == {"web": 1, "cart": 2, "payment": 1}
    assert sampled_out.spans_per_service == {}
    elements = parse(search_page(web_tables, {}, NOW, SETTINGS).html)
    chips = [
        (c.text, [n.text for n in elements if "count" in n.classes and c in n.ancestors])
        for c in elements
        if "svc" in c.classes
    ]
    assert chips == [("api", []), ("cart 2", ["2"]), ("payment 1", ["1"]), ("web 1", ["1"])]


def tagged_span(n: int, service: str, attributes: dict[str, str], resource: dict[str, str]) -> Span:
    start = NOW - n * MINUTE
    return make_span(
        f"{n:032x}",
        f"{n:016x}",
        "op",
        service,
        start,
        start + MS,
        attributes=attributes,
        resource_attributes={"service.name": service, **resource},
    )


def test_tags_match_span_or_resource_attributes_all_on_one_span(
    web_tables: Warehouse, store_trace: StoreTrace
) -> None:
    store_trace([tagged_span(1, "web", {"http.status_code": "500", "user": "ann"}, {})])
    store_trace([tagged_span(2, "web", {"http.status_code": "200"}, {"region": "eu west"})])
    store_trace([tagged_span(3, "cart", {"http.status_code": "500"}, {"region": "eu west"})])
    # Trace 4 has both tags, on two different spans: Jaeger's rule wants one span with all.
    store_trace(
        [
            tagged_span(4, "web", {"http.status_code": "500"}, {}),
            {**tagged_span(4, "web", {}, {"region": "eu west"}), "span_id": "4" * 16},
        ]
    )
    store_trace([tagged_span(5, "web", {"empty": ""}, {})])
    assert found(web_tables, tags="http.status_code=500") == [1, 3, 4]
    assert found(web_tables, tags='region="eu west"') == [2, 3, 4]  # a resource attribute
    assert found(web_tables, tags="http.status_code=500 region='eu west'") == [3]
    assert found(web_tables, tags="http.status_code=500", service="web") == [1, 4]
    assert found(web_tables, tags="http.status_code=500", operation="op") == [1, 3, 4]
    assert found(web_tables, tags="http.status_code=500", operation="other") == []
    assert found(web_tables, tags="user=ann region=eu") == []
    assert found(web_tables, tags="http.status_code=5") == []  # whole values only
    # An empty value matches a key that is there with an empty value, not a missing key.
    assert found(web_tables, tags="empty=") == [5]
    assert found(web_tables, tags="a=b=c") == []  # the first = splits key and value


@pytest.mark.parametrize(
    ("tags", "says"),
    [
        ("http.status_code", "tags: 'http.status_code' should be key=value"),
        ("=500", "tags: '=500' should be key=value"),
        ('k="open', "tags: No closing quotation"),
        (" ".join(f"k{i}=v" for i in range(MAX_TAGS + 1)), f"tags: 21 given, at most {MAX_TAGS}"),
    ],
)
def test_bad_tags_say_how_to_write_them(web_tables: Warehouse, tags: str, says: str) -> None:
    with pytest.raises(ValueError, match="^" + says):
        resolve_search(TraceSearch(tags=tags), NOW)
    page = search_page(web_tables, {"tags": tags}, NOW, SETTINGS)
    assert page.status == 400 and says in select(page.html, "div", "problem")[0].text


def test_scatter_plot_places_each_trace_by_start_and_duration(stored: Warehouse) -> None:
    page = search_page(stored, {}, NOW, SETTINGS).html
    elements = parse(page)
    points = {int(a.attrs["data-trace-id"], 16): a for a in elements if "point" in a.classes}
    assert set(points) == {1, 2, 3}
    for n, point in points.items():
        assert point.attrs["href"] == f"/ui/trace/{n:032x}"
    # Trace 2 failed: a red diamond (a path); the others are circles.
    assert "error" in points[2].classes and "error" not in points[1].classes
    circles = {
        n: next(e for e in elements if e.tag == "circle" and points[n] in e.ancestors)
        for n in (1, 3)
    }
    (diamond,) = [e for e in elements if e.tag == "path" and points[2] in e.ancestors]
    # Across: 50, 40 and 30 minutes ago span the axis, oldest at the left edge.
    x1, x3 = float(circles[1].attrs["cx"]), float(circles[3].attrs["cx"])
    assert (x1, x3) == (PLOT_LEFT, PLOT_WIDTH - PLOT_RIGHT)
    x2 = float(diamond.attrs["d"][1:].split()[0])
    assert x2 == pytest.approx((x1 + x3) / 2, abs=0.1)
    # Up: 20, 300 and 80 ms on an axis to 500 ms (the next round number above 300).
    bottom = PLOT_HEIGHT - PLOT_BOTTOM
    inner = bottom - PLOT_TOP
    assert float(circles[1].attrs["cy"]) == pytest.approx(bottom - inner * 20 / 500, abs=0.1)
    assert float(circles[3].attrs["cy"]) == pytest.approx(bottom - inner * 80 / 500, abs=0.1)
    ticks = [t.text for t in elements if t.tag == "text" and "tick" in t.classes]
    assert ticks[:5] == ["0 ms", "125 ms", "250 ms", "375 ms", "500 ms"]
    # Hovering a point names its trace.
    (hover,) = [t for t in elements if t.tag == "title" and points[2] in t.ancestors]
    assert hover.text.startswith("web: GET /\n300 ms, 2 spans, 1 error, 2 services\n")
    assert f"{2:032x}" in hover.text
    # No results, no plot.
    empty = search_page(stored, {"service": "nobody"}, NOW, SETTINGS).html
    assert not select(empty, "a", "point") and not select(empty, "svg")


@pytest.mark.parametrize(
    ("value", "ceiling"),
    [(0.001, 0.001), (0.3, 0.5), (1, 1), (1.2, 2), (2.1, 2.5), (3, 5), (7, 10), (300, 500)],
)
def test_the_duration_axis_ends_at_a_round_number(value: float, ceiling: float) -> None:
    assert nice_ceiling(value) == pytest.approx(ceiling)


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
    assert evil not in page.html and "<img" not in page.html
    assert not [e for e in select(page.html) if e.tag == "img"]
    # The page's only scripts: the (service, operation) pairs as JSON, and the rule that
    # fills the operation dropdown from them.
    scripts = select(page.html, "script")
    assert [s.attrs.get("type") for s in scripts] == ["application/json", None]
    assert json.loads(scripts[0].text) == [
        ['"><img src=x>', 'call "><img src=x>'],
        [evil, "GET /"],
    ]
    assert [a.text for a in select(page.html, "a", "trace-link")] == [f"{evil}: GET /"]
