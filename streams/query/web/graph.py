"""``/ui/graph``: the service graph of a time range, as an SVG drawing and a table.

The edges are the final edge windows (``tracepipe_edges``) that start in the range, added up by
`dependency_summary` (streams/query/windows.py); rates are over the time those windows cover.
The drawing is a layered (Sugiyama-style) layout, kept simple:

- cycles are broken by a depth-first search from the services nobody calls (then the rest, by
  name): the calls that close a cycle are left out of the layering;
- each service's layer is the longest chain of calls that reaches it, so callers sit left of
  the services they call;
- a call that skips layers gets a `Bend` in every layer it crosses, which takes a slot there
  like a small node, so the line runs in a channel of its own instead of through boxes;
- the first layer is ordered by name, then each layer by the mean slot of its neighbours
  (barycentres), sweeping down, up and down again, which untangles most crossings.

An edge's width grows with its call rate, it is red when its error rate reaches
`ERROR_RATE_WARN`, and its label gives both; its tooltip (``<title>``) has the latencies. Calls
against the layering (cycles, within one layer) are arcs below the boxes; a service calling
itself gets a loop. A node only ever called as a database or an uninstrumented peer has a
dashed border.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

from streams.config import Settings
from streams.query import Reader
from streams.query.table import format_ms, format_quantity
from streams.query.timestamps import format_time
from streams.query.web import Page
from streams.query.web.markup import (
    ERROR_RATE_WARN,
    ranged_page,
    service_colours,
    table,
    text,
    ui_url,
)
from streams.query.windows import EdgeSummary, arrival_lag, dependency_summary

NODE_HEIGHT = 36
BEND_HEIGHT = 8
LAYER_GAP = 110
ROW_GAP = 26
MARGIN = 24
CHAR_WIDTH = 7.6
"""Approximate width of one character of the node labels (13 px sans-serif)."""
SWEEPS = 2
"""Up-and-down barycentre passes after the first downward one."""
PEER_CONNECTIONS = frozenset({"database", "virtual_node"})
"""Edge types whose server is not an instrumented service of its own."""


@dataclass(frozen=True, order=True)
class Bend:
    """Where a call that skips layers crosses an intermediate layer."""

    client: str
    server: str
    layer: int


Slot = str | Bend
"""What takes a place in a layer: a service, or a call passing through."""


@dataclass(frozen=True)
class Layering:
    """Services in layers (callers left), each layer's slots top to bottom."""

    layer: Mapping[str, int]
    columns: tuple[tuple[Slot, ...], ...]
    bends: Mapping[tuple[str, str], tuple[Bend, ...]]
    """The bends of each call that skips layers, left to right."""


def _acyclic_calls(nodes: Sequence[str], calls: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """`calls` without those that close a cycle (found by an iterative depth-first search from
    the services nobody calls, then from the rest in order)."""
    called = {callee for callees in calls.values() for callee in callees}
    kept: dict[str, list[str]] = {n: [] for n in nodes}
    state: dict[str, int] = {}  # 1: on the search stack, 2: done
    for origin in [n for n in nodes if n not in called] + list(nodes):
        if origin in state:
            continue
        state[origin] = 1
        stack = [(origin, iter(calls[origin]))]
        while stack:
            node, todo = stack[-1]
            callee = next(todo, None)
            if callee is None:
                state[node] = 2
                stack.pop()
            elif state.get(callee) != 1:
                kept[node].append(callee)
                if callee not in state:
                    state[callee] = 1
                    stack.append((callee, iter(calls[callee])))
    return kept


def _longest_path_layers(nodes: Sequence[str], calls: Mapping[str, list[str]]) -> dict[str, int]:
    """Each service's layer: the longest chain of (acyclic) calls that reaches it."""
    incoming = dict.fromkeys(nodes, 0)
    for callees in calls.values():
        for callee in callees:
            incoming[callee] += 1
    layer = dict.fromkeys(nodes, 0)
    ready = [n for n in nodes if incoming[n] == 0]
    while ready:
        node = ready.pop()
        for callee in calls[node]:
            layer[callee] = max(layer[callee], layer[node] + 1)
            incoming[callee] -= 1
            if incoming[callee] == 0:
                ready.append(callee)
    return layer


def _name(slot: Slot) -> tuple[str, str]:
    """A slot's tie-breaking sort key: a bend sorts by the service it leads to."""
    return (slot.server, slot.client) if isinstance(slot, Bend) else (slot, "")


def layer_services(pairs: Sequence[tuple[str, str]]) -> Layering:
    """The layered layout of caller -> callee `pairs`; the same pairs give the same layout."""
    nodes = sorted({n for pair in pairs for n in pair})
    calls: dict[str, list[str]] = {n: [] for n in nodes}
    for client, server in sorted(set(pairs)):
        if client != server:
            calls[client].append(server)
    acyclic = _acyclic_calls(nodes, calls)
    layer = _longest_path_layers(nodes, acyclic)
    # Links between neighbouring layers, with a bend wherever a call skips a layer.
    down: dict[Slot, list[Slot]] = {}
    up: dict[Slot, list[Slot]] = {}
    bends: dict[tuple[str, str], tuple[Bend, ...]] = {}
    for client in nodes:
        for server in acyclic[client]:
            route = tuple(Bend(client, server, i) for i in range(layer[client] + 1, layer[server]))
            if route:
                bends[client, server] = route
            chain: list[Slot] = [client, *route, server]
            for a, b in pairwise(chain):
                down.setdefault(a, []).append(b)
                up.setdefault(b, []).append(a)
    depth = max(layer.values(), default=-1) + 1
    columns: list[list[Slot]] = [[] for _ in range(depth)]
    for n in nodes:
        columns[layer[n]].append(n)
    for route in bends.values():
        for bend in route:
            columns[bend.layer].append(bend)
    if columns:
        columns[0].sort(key=_name)

    def arrange(i: int, neighbours: Mapping[Slot, list[Slot]], beside: list[Slot]) -> None:
        """Order layer `i` by the mean slot of each member's neighbours in layer `beside`."""
        where = {slot: k for k, slot in enumerate(beside)}
        now = {slot: k for k, slot in enumerate(columns[i])}

        def key(slot: Slot) -> tuple[float, tuple[str, str]]:
            seen = [where[n] for n in neighbours.get(slot, []) if n in where]
            return (sum(seen) / len(seen) if seen else now[slot], _name(slot))

        columns[i].sort(key=key)

    for i in range(1, depth):
        arrange(i, up, columns[i - 1])
    for _ in range(SWEEPS):
        for i in range(depth - 2, -1, -1):
            arrange(i, down, columns[i + 1])
        for i in range(1, depth):
            arrange(i, up, columns[i - 1])
    return Layering(layer, tuple(tuple(c) for c in columns), bends)


@dataclass(frozen=True)
class Box:
    """Where a slot is drawn: top-left corner and size (a bend spans its column's width)."""

    x: float
    y: float
    width: float
    height: float

    @property
    def middle(self) -> float:
        """The vertical centre."""
        return self.y + self.height / 2


def place_slots(layering: Layering) -> dict[Slot, Box]:
    """Boxes for every slot: layers left to right, each layer centred on the tallest."""
    widths: dict[Slot, float] = {}
    for column in layering.columns:
        for slot in column:
            widths[slot] = 0.0 if isinstance(slot, Bend) else max(96.0, CHAR_WIDTH * len(slot) + 32)
    column_width = [max([widths[s] for s in column] + [40.0]) for column in layering.columns]

    def height(slot: Slot) -> float:
        return BEND_HEIGHT if isinstance(slot, Bend) else NODE_HEIGHT

    column_height = [
        sum(height(s) + ROW_GAP for s in column) - ROW_GAP for column in layering.columns
    ]
    tallest = max(column_height, default=0.0)
    boxes: dict[Slot, Box] = {}
    x = float(MARGIN)
    for i, column in enumerate(layering.columns):
        y = MARGIN + (tallest - column_height[i]) / 2
        for slot in column:
            if isinstance(slot, Bend):
                boxes[slot] = Box(x, y, column_width[i], BEND_HEIGHT)
            else:
                boxes[slot] = Box(
                    x + (column_width[i] - widths[slot]) / 2, y, widths[slot], NODE_HEIGHT
                )
            y += height(slot) + ROW_GAP
        x += column_width[i] + LAYER_GAP
    return boxes


def _curve(x0: float, y0: float, x3: float, y3: float) -> str:
    """A cubic from the current point to (x3, y3), level at both ends."""
    mid = (x0 + x3) / 2
    return f" C {mid:.1f} {y0:.1f}, {mid:.1f} {y3:.1f}, {x3:.1f} {y3:.1f}"


def edge_path(
    client: str, server: str, layering: Layering, boxes: Mapping[Slot, Box]
) -> tuple[str, float, float]:
    """The SVG path of the calls from `client` to `server`, and where their label goes."""
    a, b = boxes[client], boxes[server]
    if client == server:
        x, y, top = a.x + a.width - 40, a.y, a.y - 34
        loop = (
            f"M {x:.1f} {y:.1f} C {x:.1f} {top:.1f}, {x + 28:.1f} {top:.1f}, {x + 28:.1f} {y:.1f}"
        )
        return loop, x + 14, y - 30
    if layering.layer[server] <= layering.layer[client]:
        # Against the layering: an arc below both boxes.
        x0, y0, x3, y3 = a.x + a.width / 2, a.y + a.height, b.x + b.width / 2, b.y + b.height
        dip = max(y0, y3) + 40
        path = f"M {x0:.1f} {y0:.1f} C {x0:.1f} {dip:.1f}, {x3:.1f} {dip:.1f}, {x3:.1f} {y3:.1f}"
        return path, (x0 + x3) / 2, (y0 + 6 * dip + y3) / 8 + 14
    x, y = a.x + a.width, a.middle
    path = f"M {x:.1f} {y:.1f}"
    label: tuple[float, float] | None = None
    for bend in layering.bends.get((client, server), ()):
        box = boxes[bend]
        path += _curve(x, y, box.x, box.middle) + f" L {box.x + box.width:.1f} {box.middle:.1f}"
        label = label or ((x + box.x) / 2, (y + box.middle) / 2)
        x, y = box.x + box.width, box.middle
    path += _curve(x, y, b.x, b.middle)
    label = label or ((x + b.x) / 2, (y + b.middle) / 2)
    return path, label[0], label[1] - 4


def graph_svg(edges: Sequence[EdgeSummary]) -> str:
    """The service graph as one ``<svg>``: boxes linking to each service's traces, edges
    labelled with rate and error rate, a tooltip (``<title>``) with the latencies."""
    layering = layer_services([(e.client, e.server) for e in edges])
    boxes = place_slots(layering)
    colours = service_colours(layering.layer)
    clients = {e.client for e in edges}
    busiest = max((e.throughput_per_s for e in edges), default=0.0) or 1.0
    parts: list[str] = []
    for e in edges:
        path, lx, ly = edge_path(e.client, e.server, layering, boxes)
        errors = e.error_rate >= ERROR_RATE_WARN
        label = f"{format_quantity(e.throughput_per_s)}/s"
        if e.errors:
            label += f" · {format_quantity(e.error_rate * 100)}% err"
        kind = f" ({e.connection_type})" if e.connection_type else ""
        tooltip = (
            f"{e.client} → {e.server}{kind}: {e.calls} calls, {e.errors} errors, "
            f"p50 {format_ms(e.p50_ns)} ms, p99 {format_ms(e.p99_ns)} ms"
        )
        stroke = 1.2 + 3.8 * e.throughput_per_s / busiest
        marker = "arrow-bad" if errors else "arrow"
        parts.append(
            f'<g class="edge{" errors" if errors else ""}" data-client="{text(e.client)}" '
            f'data-server="{text(e.server)}"><title>{text(tooltip)}</title>'
            f'<path d="{path}" stroke-width="{stroke:.2f}" marker-end="url(#{marker})"/>'
            f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="middle">{text(label)}</text></g>'
        )
    for name in layering.layer:
        box = boxes[name]
        peer = name not in clients and all(
            e.connection_type in PEER_CONNECTIONS for e in edges if e.server == name
        )
        shape = (
            f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width:.1f}" '
            f'height="{box.height}" rx="6"/>'
            f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="6" height="{box.height}" rx="2" '
            f'style="fill:{colours[name]};stroke:none"/>'
            f'<text x="{box.x + box.width / 2 + 3:.1f}" y="{box.middle + 4.5:.1f}" '
            f'text-anchor="middle">{text(name)}</text>'
        )
        if not peer:
            shape = f'<a href="{text(ui_url("", {"service": name}))}">{shape}</a>'
        parts.append(
            f'<g class="node{" peer" if peer else ""}" data-service="{text(name)}">'
            f"<title>{text(name)}</title>{shape}</g>"
        )
    width = max((b.x + b.width for b in boxes.values()), default=0.0) + MARGIN
    height = max((b.y + b.height for b in boxes.values()), default=0.0) + MARGIN + 50
    markers = "".join(
        f'<marker id="{mid}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        f'markerHeight="7" markerUnits="userSpaceOnUse" orient="auto">'
        f'<path d="M0 0 L10 5 L0 10 z" fill="{fill}"/></marker>'
        for mid, fill in (("arrow", "#9aa5b1"), ("arrow-bad", "#c62828"))
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="service graph">'
        f"<defs>{markers}</defs>{''.join(parts)}</svg>"
    )


def edges_table(edges: Sequence[EdgeSummary]) -> str:
    """One row per edge: client, server, type, calls, rate, error %, p50, p99."""
    rows = [
        (
            text(e.client),
            text(e.server),
            text(e.connection_type or "request"),
            text(e.calls),
            text(format_quantity(e.throughput_per_s)),
            text(format_quantity(e.error_rate * 100)),
            text(format_ms(e.p50_ns)),
            text(format_ms(e.p99_ns)),
        )
        for e in edges
    ]
    bad = {(i, 5): "bad" for i, e in enumerate(edges) if e.error_rate >= ERROR_RATE_WARN}
    return table(
        ("Client", "Server", "Type", "Calls", "Rate/s", "Error %", "p50 ms", "p99 ms"),
        rows,
        numeric=range(3, 8),
        cells=bad,
    )


def graph_page(reader: Reader, params: Mapping[str, str], now_ns: int, settings: Settings) -> Page:
    """The service-graph page for the range in `params` (``since``, ``until``)."""

    def content(since_ns: int, until_ns: int) -> str:
        between = f"between {format_time(since_ns)} and {format_time(until_ns)}"
        edges = dependency_summary(reader, since_ns, until_ns)
        if not edges:
            return (
                f'<p class="note" id="no-edges">No final edge windows start {text(between)}. '
                f"{text(arrival_lag(settings, 'edges'))}: widen the range, or check that a "
                "worker is assembling traces.</p>"
            )
        return (
            f'<p class="note">Calls {text(between)}, from the final edge windows; '
            f'<span id="coverage">{text(edges[0].coverage.describe())}</span>. Line width '
            "grows with the call rate, red lines have errors. Hover an edge for its "
            "latencies; click a service for its traces.</p>"
            f'<div class="graph">{graph_svg(edges)}</div><h2>Edges</h2>{edges_table(edges)}'
        )

    return ranged_page("Service graph", "graph", params, now_ns, content)
