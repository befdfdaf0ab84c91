"""The service graph: layering (callers left, cycles and self-calls survive, layer-skipping calls
get bends), deterministic ordering, the SVG's nodes, edges and escaping, and the page."""

from __future__ import annotations

import random
import time
import xml.etree.ElementTree as ET
from itertools import pairwise

from streams.config import Settings
from streams.query.web.graph import Bend, graph_page, graph_svg, layer_services, place_slots
from streams.query.windows import Coverage, EdgeSummary
from streams.warehouse import Warehouse
from tests.unit.query.test_windows import MS, edge, store
from tests.unit.query.web.dom import parse, select

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
        if g.get("data-client")
    }
    assert set(drawn) == {(e.client, e.server) for e in edges}
    assert drawn["web", "payment"].get("class") == "edge errors"
    assert drawn["web", "cart"].get("class") == "edge"
    label = drawn["web", "payment"].find(f"{SVG}text")
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
    assert [g.attrs["data-server"] for g in select(page.html, "g", "errors")] == ["cart"]
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
