"""The service graph: layering (callers left, cycles and self-calls survive, layer-skipping calls
get bends), deterministic ordering, the SVG's nodes, edges and escaping, each service's RED
numbers (the services page's), edge labels that overlap nothing, edges linking to their table
row, and the page."""

from __future__ import annotations

import random
import time
import xml.etree.ElementTree as ET
from itertools import pairwise

from streams.config import Settings
from streams.query.web.graph import graph_page, graph_svg
from streams.query.web.graph_layers import Bend, layer_services
from streams.query.web.graph_placement import LABEL_HEIGHT, Box, place_labels, place_slots
from streams.query.web.services import services_page
from streams.query.windows import Coverage, EdgeSummary
from streams.warehouse import Warehouse
from tests.unit.query.test_windows import MS, edge, latency, store
from tests.unit.query.web.dom import parse, select
from tests.unit.query.web.test_services import table_rows

SETTINGS = Settings()
SVG = "{http://www.w3.org/2000/svg}"


def summary(
    client: str, server: str, kind: str = "", calls: int = 100, errors: int = 0
) -> EdgeSummary:
    return EdgeSummary(
        client,
        server,
        kind,
        1,
        calls,
        errors,
        errors / calls,
        calls / 10,
        MS,
        2 * MS,
        0.01,
        Coverage(0, 10_000_000_000),
    )


def test_callers_sit_left_of_callees_and_skipped_layers_get_bends() -> None:
    layering = layer_services([("web", "api"), ("api", "db"), ("web", "db")])
    assert layering.layer == {"api": 1, "db": 2, "web": 0}
    assert layering.bends == {("web", "db"): (Bend("web", "db", 1),)}
    assert [set(c) for c in layering.columns] == [{"web"}, {"api", Bend("web", "db", 1)}, {"db"}]


def test_cycles_and_self_calls_are_laid_out() -> None:
    layering = layer_services([("a", "b"), ("b", "c"), ("c", "a"), ("b", "b"), ("x", "x")])
    # The search starts at a (nobody calls only x, which calls itself): c -> a closes the cycle.
    assert layering.layer == {"a": 0, "b": 1, "c": 2, "x": 0}
    assert layering.bends == {}


def test_layers_are_ordered_by_their_callers_and_the_same_for_any_input_order() -> None:
    pairs = [("a", "z"), ("b", "y"), ("z", "q"), ("y", "p")]
    layering = layer_services(pairs)
    # a is above b, so a's callee z goes above y (not by name), and q above p.
    assert layering.columns == (("a", "b"), ("z", "y"), ("q", "p"))
    for seed in range(5):
        shuffled = pairs[:]
        random.Random(seed).shuffle(shuffled)
        assert layer_services(shuffled) == layering


def test_boxes_do_not_overlap_and_keep_their_layer_order() -> None:
    pairs = [
        ("user", "frontend"),
        ("frontend", "cart"),
        ("frontend", "checkout"),
        ("checkout", "cart"),
        ("checkout", "payment"),
        ("cart", "redis"),
    ]
    layering = layer_services(pairs)
    boxes = place_slots(layering)
    for column in layering.columns:
        tops = [boxes[slot].y for slot in column]
        assert tops == sorted(tops)
        for upper, lower in pairwise(column):
            assert boxes[upper].y + boxes[upper].height < boxes[lower].y
    assert boxes["user"].x + boxes["user"].width < boxes["frontend"].x


def test_svg_nodes_edges_peers_errors_and_escaping() -> None:
    evil = '<script>alert(1)</script>"'
    edges = [
        summary("web", "cart"),
        summary("cart", "postgresql", "database"),
        summary("web", "payment", errors=5),
        summary("web", evil),
        summary("cart", "cart"),
    ]
    svg = graph_svg(edges)
    assert "<script>" not in svg
    root = ET.fromstring(svg)  # well-formed XML
    nodes = {
        g.get("data-service"): g.get("class") for g in root.iter(f"{SVG}g") if g.get("data-service")
    }
    assert nodes == {
        "web": "node",
        "cart": "node",
        "payment": "node",
        evil: "node",
        "postgresql": "node peer",
    }
    drawn = {
        (g.get("data-client"), g.get("data-server")): g
        for g in root.iter(f"{SVG}g")
        if "edge" in g.get("class", "").split()
    }
    assert set(drawn) == {(e.client, e.server) for e in edges}
    assert drawn["web", "payment"].get("class") == "edge errors"
    assert drawn["web", "cart"].get("class") == "edge"
    labels = {
        (g.get("data-client"), g.get("data-server")): g.find(f"{SVG}a/{SVG}text")
        for g in root.iter(f"{SVG}g")
        if "edge-label" in g.get("class", "").split()
    }
    assert set(labels) == set(drawn)
    label = labels["web", "payment"]
    assert label is not None and label.text == "10.0/s · 5.00% err"
    # Services link to their traces; the uninstrumented database does not.
    links = [a.get("href") for a in root.iter(f"{SVG}a")]
    assert "/ui/?service=web" in links and not [h for h in links if "postgresql" in (h or "")]


def test_the_page_draws_stored_edges_and_lists_them(web_tables: Warehouse) -> None:
    store(
        web_tables,
        edge([10 * MS] * 9 + [200 * MS], "web", "cart", errors=1),
        edge([1 * MS] * 5, "cart", "postgresql", "database"),
    )
    page = graph_page(web_tables, {}, time.time_ns(), SETTINGS)
    assert page.status == 200
    assert {g.attrs["data-service"] for g in select(page.html, "g", "node")} == {
        "web",
        "cart",
        "postgresql",
    }
    # web -> cart has errors: its line and its label are red.
    assert [g.attrs["data-server"] for g in select(page.html, "g", "errors")] == ["cart"] * 2
    rows = [tr.text for tr in select(page.html, "tr")][1:]
    assert rows[0].startswith("cartpostgresqldatabase5") and rows[1].startswith("webcartrequest10")
    # 10 calls in the one 10 s window stored: 1/s, not 10 calls over the page's default range.
    assert rows[1].startswith("webcartrequest101.00")
    (coverage,) = [e for e in parse(page.html) if e.attrs.get("id") == "coverage"]
    assert coverage.text.startswith("rates over 10s of data, ")


def test_no_edges_says_when_they_appear(web_tables: Warehouse) -> None:
    page = graph_page(web_tables, {"since": "10m"}, time.time_ns(), SETTINGS)
    (note,) = select(page.html, "p", "note")
    assert "No final edge windows" in note.text and "trace idle (5 s)" in note.text
    assert not select(page.html, "svg")


def boxes_of(svg: str) -> tuple[list[Box], list[Box]]:
    """The drawing's edge-label boxes and service boxes, as drawn."""
    root = ET.fromstring(svg)

    def box(rect: ET.Element) -> Box:
        return Box(*(float(rect.get(a) or 0) for a in ("x", "y", "width", "height")))

    labels = [box(r) for r in root.iter(f"{SVG}rect") if r.get("class") == "label"]
    nodes = [box(next(g.iter(f"{SVG}rect"))) for g in root.iter(f"{SVG}g") if g.get("data-service")]
    return labels, nodes


def test_edge_labels_overlap_neither_each_other_nor_boxes_on_a_crowded_graph() -> None:
    # Every front service calls every back service, with skipped layers, a cycle, self-calls
    # and errors: 60 labels, many more than fit beside their lines.
    fronts = [f"front-{i}" for i in range(6)]
    backs = [f"backend-service-{i}" for i in range(8)]
    edges = [summary("gateway", f, errors=i) for i, f in enumerate(fronts)]
    edges += [
        summary(f, b, errors=(i * j) % 3) for i, f in enumerate(fronts) for j, b in enumerate(backs)
    ]
    edges += [
        summary("gateway", "backend-service-3"),
        summary("backend-service-1", "gateway"),
        summary("front-2", "front-2"),
        summary("backend-service-0", "postgresql", "database"),
        summary("gateway", "postgresql", "database", errors=7),
    ]
    svg = graph_svg(edges)
    labels, nodes = boxes_of(svg)
    assert len(labels) == len(edges) and len(nodes) == 1 + 6 + 8 + 1
    width, height = (float(ET.fromstring(svg).get(a) or 0) for a in ("width", "height"))
    for i, label in enumerate(labels):
        assert label.x >= 0 and label.x + label.width <= width
        assert label.y >= 0 and label.y + label.height <= height
        assert not [n for n in nodes if label.overlaps(n)]
        assert not [other for other in labels[i + 1 :] if label.overlaps(other)]


def test_a_label_goes_to_its_lines_middle_else_along_it_else_straight_above_or_below() -> None:
    line = (((0.0, 100.0), (50.0, 100.0), (50.0, 100.0), (100.0, 100.0)),)
    blocker = Box(40, 90, 20, 20)  # a box on the line's middle
    first, second, third = place_labels([(line, 30.0)] * 3, [])
    assert first == Box(35, 100 - LABEL_HEIGHT / 2, 30, LABEL_HEIGHT)
    assert second.x != first.x and second.y == first.y  # along the line
    assert not third.overlaps(first) and not third.overlaps(second)
    # Nothing along the line is free; the drawing's left edge moves the box right.
    (moved,) = place_labels([(line, 100.0)], [blocker])
    assert moved.x == 2 and abs(moved.middle - 100) == 2 * (LABEL_HEIGHT + 1)
    assert not moved.overlaps(blocker)


def test_services_carry_the_services_pages_red_numbers(web_tables: Warehouse) -> None:
    store(
        web_tables,
        latency([10 * MS] * 90 + [200 * MS] * 10, key=("cart", "GET /cart", "SERVER", "ok")),
        latency([300 * MS] * 5, key=("cart", "GET /cart", "SERVER", "error"), errors=5),
        latency([2 * MS] * 50, key=("cart", "SELECT", "CLIENT", "ok")),
        latency([1 * MS] * 40, key=("web", "GET /", "SERVER", "ok")),
        edge([10 * MS] * 105, "web", "cart", errors=5),
        edge([2 * MS] * 50, "cart", "postgresql", "database"),
    )
    now = time.time_ns()
    services = {r[0]: r for r in table_rows(services_page(web_tables, {}, now, SETTINGS).html, 0)}
    page = graph_page(web_tables, {}, now, SETTINGS)
    elements = parse(page.html)
    nodes = {e.attrs["data-service"]: e for e in elements if e.tag == "g" and "node" in e.classes}
    red = {
        name: [t for t in elements if g in t.ancestors and "red" in t.classes]
        for name, g in nodes.items()
    }
    # Rate, error % and p99 of the calls each serves, as the services page has them.
    (cart,) = red["cart"]
    assert (
        cart.text
        == f"{services['cart'][2]}/s · {services['cart'][3]}% · p99 {services['cart'][6]} ms"
    )
    # 105 calls in the one 10 s window; p99 is the merged sketch's (within 1% of 300 ms).
    assert cart.text == "10.5/s · 4.76% · p99 297 ms" and "bad" in cart.classes
    assert [t.text for t in red["web"]] == ["4.00/s · 0% · p99 1.00 ms"]
    assert red["postgresql"] == []  # an uninstrumented peer serves nothing it reports
    (title,) = [t for t in elements if t.tag == "title" and nodes["cart"] in t.ancestors]
    assert title.text.startswith("cart: serves 105 calls, 10.5/s, 4.76% errors, p50 ")
    # A click on a service opens the search for its traces.
    hrefs = [a.attrs["href"] for a in elements if a.tag == "a" and nodes["cart"] in a.ancestors]
    assert hrefs == ["/ui/?service=cart"]


def test_an_edge_links_to_its_row_of_the_edges_table(web_tables: Warehouse) -> None:
    store(
        web_tables,
        edge([10 * MS] * 10, "web", "cart"),
        edge([1 * MS] * 5, "cart", "postgresql", "database"),
    )
    page = graph_page(web_tables, {}, time.time_ns(), SETTINGS)
    elements = parse(page.html)
    for g in [e for e in elements if e.tag == "g" and "edge-label" in e.classes]:
        (a,) = [a for a in elements if a.tag == "a" and g in a.ancestors]
        (row,) = [
            tr for tr in elements if tr.tag == "tr" and f"#{tr.attrs.get('id')}" == a.attrs["href"]
        ]
        cells = [td for td in elements if td.tag == "td" and row in td.ancestors]
        assert [c.text for c in cells[:2]] == [g.attrs["data-client"], g.attrs["data-server"]]
        links = [x.attrs["href"] for x in elements if x.tag == "a" and row in x.ancestors]
        assert links == [f"/ui/?service={cells[0].text}", f"/ui/?service={cells[1].text}"]


def test_the_note_says_both_coverages_when_they_differ(web_tables: Warehouse) -> None:
    # Edges cover one 10 s window, the services' latency windows two: each rate says its own.
    store(
        web_tables,
        latency([MS] * 20, key=("cart", "GET /cart", "SERVER", "ok")),
        latency([MS] * 20, window=1, key=("cart", "GET /cart", "SERVER", "ok")),
        edge([MS] * 10, "web", "cart"),
    )
    page = graph_page(web_tables, {"since": "1h"}, time.time_ns(), SETTINGS)
    (coverage,) = [e for e in parse(page.html) if e.attrs.get("id") == "coverage"]
    assert coverage.text.startswith("edge rates over 10s of data, ")
    assert "; service rates over 20s of data, " in coverage.text
    (red,) = [t for t in parse(page.html) if "red" in t.classes]
    assert red.text.startswith("2.00/s · ")  # 40 calls over 20 s, not over the hour asked


def test_a_service_reporting_what_it_serves_is_no_peer_even_behind_a_virtual_caller(
    web_tables: Warehouse,
) -> None:
    # storefront's only caller is the virtual "user" before its root span, and it calls nobody
    # through a client span; its latency windows say it is instrumented.
    store(
        web_tables,
        latency([MS] * 10, key=("storefront", "GET /basket", "SERVER", "ok")),
        edge([MS] * 10, "user", "storefront", "virtual_node"),
        edge([MS] * 10, "user", "frontend", "virtual_node"),
    )
    page = graph_page(web_tables, {}, time.time_ns(), SETTINGS)
    elements = parse(page.html)
    nodes = {e.attrs["data-service"]: e for e in elements if e.tag == "g" and "node" in e.classes}
    assert {n: "peer" in g.classes for n, g in nodes.items()} == {
        "user": False,
        "storefront": False,
        "frontend": True,
    }
    links = [
        a.attrs["href"] for a in elements if a.tag == "a" and nodes["storefront"] in a.ancestors
    ]
    assert links == ["/ui/?service=storefront"]
