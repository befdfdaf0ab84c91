"""``/ui/graph``: the service graph of a time range, as an SVG drawing and a table.

The edges are the final edge windows (``tracepipe_edges``) that start in the range, added up by
`dependency_summary` (streams/query/windows.py); rates are over the time those windows cover.
The drawing is a layered (Sugiyama-style) layout, kept simple: graph_layers.py puts each service
in a layer (callers left of the services they call, a `Bend` where a call skips a layer) and
orders each layer; graph_placement.py gives every slot, line and edge label its place.

An edge's width grows with its call rate, it is red when its error rate reaches
`ERROR_RATE_WARN`, and its label gives both; its tooltip (``<title>``) has the latencies and a
click on it opens its row of the edges table. Calls against the layering (cycles, within one
layer) are arcs below the boxes; a service calling itself gets a loop. A node only ever called
as a database or an uninstrumented peer has a dashed border.

Each service's box carries its RED numbers: the rate, error % and p99 of the calls it serves,
from the final latency windows, as the services page has them (`service_summary`). A click on
a box opens the search page for the service's traces.

Edge labels never overlap each other or a box (`place_labels`, graph_placement.py): each goes to
the first free place along its own line, else to the nearest free place straight above or below
its line's middle, joined to it by a dotted leader; the gaps between layers are as wide as the
widest label, so a label fits between two boxes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from streams.config import Settings
from streams.query import Reader
from streams.query.table import format_ms, format_quantity
from streams.query.timestamps import format_time
from streams.query.web import Page
from streams.query.web.graph_layers import layer_services
from streams.query.web.graph_placement import (
    LAYER_GAP,
    MARGIN,
    edge_path,
    label_width,
    node_width,
    path_data,
    place_labels,
    place_slots,
    point_on,
)
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

LEADER_MIN = 10.0
"""A label farther than this from its line's middle gets a dotted leader to it."""
PEER_CONNECTIONS = frozenset({"database", "virtual_node"})
"""Edge types whose server is not an instrumented service of its own."""





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
