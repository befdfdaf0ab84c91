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
`ERROR_RATE_WARN`, and its label gives both; its tooltip (``<title>``) has the latencies and a
click on it opens its row of the edges table. Calls against the layering (cycles, within one
layer) are arcs below the boxes; a service calling itself gets a loop. A node only ever called
as a database or an uninstrumented peer has a dashed border.

Each service's box carries its RED numbers: the rate, error % and p99 of the calls it serves,
from the final latency windows, as the services page has them (`service_summary`). A click on
a box opens the search page for the service's traces.

Edge labels never overlap each other or a box (`place_labels`): each goes to the first free
place along its own line, else to the nearest free place straight above or below its line's
middle, joined to it by a dotted leader; the gaps between layers are as wide as the widest
label, so a label fits between two boxes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

from streams.config import Settings
from streams.query import Reader
from streams.query.table import format_ms, format_quantity
from streams.query.timestamps import format_time
from streams.query.web import Page
from streams.query.web.markup import (
    ERROR_RATE_WARN,
    link,
    ranged_page,
    service_colours,
    table,
    text,
    ui_url,
)
from streams.query.windows import (
    EdgeSummary,
    LatencySummary,
    arrival_lag,
    dependency_summary,
    service_summary,
)

NODE_HEIGHT = 44
"""A box's height: the service's name over its RED line."""
BEND_HEIGHT = 8
LAYER_GAP = 110
ROW_GAP = 26
MARGIN = 24
CHAR_WIDTH = 7.6
"""Approximate width of one character of the node labels (13 px sans-serif)."""
SMALL_CHAR_WIDTH = 7.0
"""Width allowed for one character of the 11 px texts (edge labels, RED lines): at least a
digit's advance in the sans-serif fonts browsers pick (DejaVu Sans: 0.64 em), so a label's box
holds its text; the browser test measures the rendered boxes."""
LABEL_HEIGHT = 15.0
"""Height of an edge label's box (11 px text and its padding)."""
LABEL_PADDING = 4.0
"""Room left and right of an edge label's text inside its box."""
LABEL_STEPS = (0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8, 0.1, 0.9)
"""Where along a line (as the curve's parameter) a label is tried, middle first."""
LEADER_MIN = 10.0
"""A label farther than this from its line's middle gets a dotted leader to it."""
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
    """Where a slot or label is drawn: top-left corner and size (a bend spans its column's
    width)."""

    x: float
    y: float
    width: float
    height: float

    @property
    def middle(self) -> float:
        """The vertical centre."""
        return self.y + self.height / 2

    def overlaps(self, other: Box) -> bool:
        """Whether the two boxes share any area (touching edges do not)."""
        return (
            self.x < other.x + other.width
            and other.x < self.x + self.width
            and self.y < other.y + other.height
            and other.y < self.y + self.height
        )


def node_width(name: str, red: str = "") -> float:
    """A service box's width: room for its name and its RED line."""
    return max(96.0, CHAR_WIDTH * len(name) + 32, SMALL_CHAR_WIDTH * len(red) + 20)


def place_slots(
    layering: Layering, widths: Mapping[str, float] | None = None, gap: float = LAYER_GAP
) -> dict[Slot, Box]:
    """Boxes for every slot: layers left to right `gap` apart, each layer centred on the
    tallest; a service is `widths[name]` wide (else as wide as its name needs)."""
    width: dict[Slot, float] = {}
    for column in layering.columns:
        for slot in column:
            if isinstance(slot, Bend):
                width[slot] = 0.0
            else:
                width[slot] = (widths or {}).get(slot) or node_width(slot)
    column_width = [max([width[s] for s in column] + [40.0]) for column in layering.columns]

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
                    x + (column_width[i] - width[slot]) / 2, y, width[slot], NODE_HEIGHT
                )
            y += height(slot) + ROW_GAP
        x += column_width[i] + gap
    return boxes


Point = tuple[float, float]
Cubic = tuple[Point, Point, Point, Point]
"""A cubic Bézier segment: start, two control points, end."""


def point_on(cubic: Cubic, t: float) -> Point:
    """The point of `cubic` at parameter `t` (0: its start, 1: its end)."""
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = cubic
    a, b, c, d = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3
    return (a * x0 + b * x1 + c * x2 + d * x3, a * y0 + b * y1 + c * y2 + d * y3)


def _level(x0: float, y0: float, x3: float, y3: float) -> Cubic:
    """A cubic from (x0, y0) to (x3, y3), level at both ends."""
    mid = (x0 + x3) / 2
    return ((x0, y0), (mid, y0), (mid, y3), (x3, y3))


def _straight(x0: float, y0: float, x3: float, y3: float) -> Cubic:
    """A straight line as a cubic (so labels can be tried along it like along a curve)."""
    return ((x0, y0), (x0, y0), (x3, y3), (x3, y3))


def edge_path(
    client: str, server: str, layering: Layering, boxes: Mapping[Slot, Box]
) -> tuple[Cubic, ...]:
    """The line of the calls from `client` to `server`, segment by segment; the first segment
    is where its label goes first."""
    a, b = boxes[client], boxes[server]
    if client == server:
        x, y, top = a.x + a.width - 40, a.y, a.y - 34
        return (((x, y), (x, top), (x + 28, top), (x + 28, y)),)
    if layering.layer[server] <= layering.layer[client]:
        # Against the layering: an arc below both boxes.
        x0, y0, x3, y3 = a.x + a.width / 2, a.y + a.height, b.x + b.width / 2, b.y + b.height
        dip = max(y0, y3) + 40
        return (((x0, y0), (x0, dip), (x3, dip), (x3, y3)),)
    x, y = a.x + a.width, a.middle
    segments: list[Cubic] = []
    for bend in layering.bends.get((client, server), ()):
        box = boxes[bend]
        segments.append(_level(x, y, box.x, box.middle))
        segments.append(_straight(box.x, box.middle, box.x + box.width, box.middle))
        x, y = box.x + box.width, box.middle
    segments.append(_level(x, y, b.x, b.middle))
    return tuple(segments)


def path_data(segments: Sequence[Cubic]) -> str:
    """The SVG ``d`` attribute drawing `segments` (each starts where the one before ends)."""
    d = f"M {segments[0][0][0]:.1f} {segments[0][0][1]:.1f}"
    for _, (x1, y1), (x2, y2), (x3, y3) in segments:
        d += f" C {x1:.1f} {y1:.1f}, {x2:.1f} {y2:.1f}, {x3:.1f} {y3:.1f}"
    return d


class _Occupied:
    """Boxes already drawn, bucketed by the grid cells they touch, so a candidate is checked
    against its neighbours only (a graph of hundreds of edges stays fast)."""

    CELL = 64.0

    def __init__(self, boxes: Iterable[Box]) -> None:
        self._cells: dict[tuple[int, int], list[Box]] = {}
        for box in boxes:
            self.add(box)

    def _keys(self, box: Box) -> list[tuple[int, int]]:
        xs = range(int(box.x // self.CELL), int((box.x + box.width) // self.CELL) + 1)
        ys = range(int(box.y // self.CELL), int((box.y + box.height) // self.CELL) + 1)
        return [(i, j) for i in xs for j in ys]

    def add(self, box: Box) -> None:
        """Mark `box` as taken."""
        for key in self._keys(box):
            self._cells.setdefault(key, []).append(box)

    def hits(self, box: Box) -> bool:
        """Whether `box` overlaps a taken box."""
        return any(
            box.overlaps(other) for key in self._keys(box) for other in self._cells.get(key, ())
        )


def label_width(label: str) -> float:
    """The width of an edge label's box."""
    return SMALL_CHAR_WIDTH * len(label) + 2 * LABEL_PADDING


def place_labels(
    lines: Sequence[tuple[Sequence[Cubic], float]], obstacles: Iterable[Box]
) -> list[Box]:
    """A box for each (line, label width) in order, overlapping no obstacle and no box placed
    before it: the first free place along the line (its first segment's middle, then outwards,
    then the other segments), else the nearest free place straight above or below the first
    segment's middle (always found: below every box there is room)."""
    taken = _Occupied(obstacles)
    placed: list[Box] = []

    def free(box: Box) -> bool:
        return box.y >= 2 and not taken.hits(box)

    def centred(point: Point, width: float) -> Box:
        # Never left of the drawing: the x a label would get there is moved right.
        left = max(2.0, point[0] - width / 2)
        return Box(left, point[1] - LABEL_HEIGHT / 2, width, LABEL_HEIGHT)

    for segments, width in lines:
        tries = (centred(point_on(s, t), width) for s in segments for t in LABEL_STEPS)
        box = next((b for b in tries if free(b)), None)
        if box is None:
            home = centred(point_on(segments[0], 0.5), width)
            step = 1
            while box is None:
                for dy in (step * (LABEL_HEIGHT + 1), -step * (LABEL_HEIGHT + 1)):
                    moved = Box(home.x, home.y + dy, width, LABEL_HEIGHT)
                    if free(moved):
                        box = moved
                        break
                step += 1
        taken.add(box)
        placed.append(box)
    return placed


def red_line(s: LatencySummary) -> str:
    """A service's RED numbers on its box: rate, error % and p99 of the calls it serves."""
    return (
        f"{format_quantity(s.throughput_per_s)}/s · {format_quantity(s.error_rate * 100)}% · "
        f"p99 {format_ms(s.p99_ns)} ms"
    )


def edge_label(e: EdgeSummary) -> str:
    """An edge's label: its call rate, and its error rate when it has errors."""
    label = f"{format_quantity(e.throughput_per_s)}/s"
    if e.errors:
        label += f" · {format_quantity(e.error_rate * 100)}% err"
    return label


def edge_anchor(index: int) -> str:
    """The id of the edges table's row of the `index`-th edge (what a click on an edge opens)."""
    return f"edge-{index}"


def graph_svg(edges: Sequence[EdgeSummary], red: Mapping[str, LatencySummary] | None = None) -> str:
    """The service graph as one ``<svg>``: boxes with each service's RED numbers (from `red`)
    linking to its traces, edges labelled with rate and error rate linking to their row of the
    edges table, a tooltip (``<title>``) on both."""
    served = red or {}
    layering = layer_services([(e.client, e.server) for e in edges])
    lines = {name: red_line(served[name]) if name in served else "" for name in layering.layer}
    labels = [edge_label(e) for e in edges]
    gap = max([LAYER_GAP, *(label_width(label) + 16 for label in labels)])
    boxes = place_slots(layering, {n: node_width(n, line) for n, line in lines.items()}, gap)
    colours = service_colours(layering.layer)
    clients = {e.client for e in edges}
    busiest = max((e.throughput_per_s for e in edges), default=0.0) or 1.0
    routes = [edge_path(e.client, e.server, layering, boxes) for e in edges]
    label_boxes = place_labels(
        [(route, label_width(label)) for route, label in zip(routes, labels, strict=True)],
        [boxes[name] for name in layering.layer],
    )
    parts: list[str] = []
    labelled: list[str] = []
    for i, (e, route, label, box) in enumerate(
        zip(edges, routes, labels, label_boxes, strict=True)
    ):
        errors = e.error_rate >= ERROR_RATE_WARN
        kind = f" ({e.connection_type})" if e.connection_type else ""
        tooltip = (
            f"{e.client} → {e.server}{kind}: {e.calls} calls, {e.errors} errors, "
            f"p50 {format_ms(e.p50_ns)} ms, p99 {format_ms(e.p99_ns)} ms"
        )
        stroke = 1.2 + 3.8 * e.throughput_per_s / busiest
        marker = "arrow-bad" if errors else "arrow"
        home = point_on(route[0], 0.5)
        cx, cy = box.x + box.width / 2, box.middle
        leader = ""
        if abs(cx - home[0]) + abs(cy - home[1]) > LEADER_MIN:
            end = box.y if home[1] < box.y else box.y + box.height
            leader = (
                f'<line class="leader" x1="{home[0]:.1f}" y1="{home[1]:.1f}" x2="{cx:.1f}" '
                f'y2="{end:.1f}"/>'
            )
        data = f'data-client="{text(e.client)}" data-server="{text(e.server)}"'
        bad = " errors" if errors else ""
        parts.append(
            f'<g class="edge{bad}" {data}><title>{text(tooltip)}</title>'
            f'<path d="{path_data(route)}" stroke-width="{stroke:.2f}" '
            f'marker-end="url(#{marker})"/></g>'
        )
        # Labels go over every line (drawn after them all), so no line hides one or its link.
        labelled.append(
            f'<g class="edge-label{bad}" {data}><title>{text(tooltip)}</title>{leader}'
            f'<a href="#{edge_anchor(i)}">'
            f'<rect class="label" x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width:.1f}" '
            f'height="{box.height:.1f}" rx="3"/>'
            f'<text x="{cx:.1f}" y="{cy + 4:.1f}" text-anchor="middle">{text(label)}</text>'
            "</a></g>"
        )
    parts += labelled
    for name in layering.layer:
        box = boxes[name]
        summary = served.get(name)
        # A service that reports calls it serves is instrumented, even when its only caller is
        # a virtual node (the "user" before a root span).
        peer = (
            summary is None
            and name not in clients
            and all(e.connection_type in PEER_CONNECTIONS for e in edges if e.server == name)
        )
        centre = f'x="{box.x + box.width / 2 + 3:.1f}" text-anchor="middle"'
        title = name
        if summary is None:
            words = f'<text {centre} y="{box.middle + 4.5:.1f}">{text(name)}</text>'
        else:
            title += (
                f": serves {summary.calls} calls, {format_quantity(summary.throughput_per_s)}/s, "
                f"{format_quantity(summary.error_rate * 100)}% errors, p50 "
                f"{format_ms(summary.p50_ns)} ms, p99 {format_ms(summary.p99_ns)} ms"
            )
            bad = " bad" if summary.error_rate >= ERROR_RATE_WARN else ""
            words = (
                f'<text {centre} y="{box.y + 18:.1f}">{text(name)}</text>'
                f'<text class="red{bad}" {centre} y="{box.y + 35:.1f}">{text(lines[name])}</text>'
            )
        shape = (
            f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width:.1f}" '
            f'height="{box.height}" rx="6"/>'
            f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="6" height="{box.height}" rx="2" '
            f'style="fill:{colours[name]};stroke:none"/>{words}'
        )
        if not peer:
            shape = f'<a href="{text(ui_url("", {"service": name}))}">{shape}</a>'
        parts.append(
            f'<g class="node{" peer" if peer else ""}" data-service="{text(name)}">'
            f"<title>{text(title)}</title>{shape}</g>"
        )
    drawn = [*boxes.values(), *label_boxes]
    width = max((b.x + b.width for b in drawn), default=0.0) + MARGIN
    height = max((b.y + b.height for b in drawn), default=0.0) + MARGIN + 50
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
    """One row per edge (the target of a click on it in the drawing): client, server (each
    linking to a search of its traces), type, calls, rate, error %, p50, p99."""
    rows = [
        (
            link(ui_url("", {"service": e.client}), text(e.client)),
            link(ui_url("", {"service": e.server}), text(e.server)),
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
        row_ids=[edge_anchor(i) for i in range(len(edges))],
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
        served = service_summary(reader, since_ns, until_ns)
        edge_rates = edges[0].coverage.describe()
        if served and served[0].coverage != edges[0].coverage:
            coverage = (
                f"edge {edge_rates}; service {served[0].coverage.describe()} "
                "(their final latency windows)"
            )
        else:
            coverage = edge_rates
        return (
            f'<p class="note">Calls {text(between)}, from the final edge windows; '
            f'<span id="coverage">{text(coverage)}</span>. Each service shows the rate, error % '
            "and p99 of the calls it serves (SERVER and CONSUMER spans, as on the services "
            "page). Line width grows with the call rate, red lines have errors. Hover a "
            "service or an edge for more; click a service for its traces, an edge for its "
            "row below.</p>"
            f'<div class="graph">{graph_svg(edges, {s.service: s for s in served})}</div>'
            f"<h2>Edges</h2>{edges_table(edges)}"
        )

    return ranged_page("Service graph", "graph", params, now_ns, content)
