"""``/ui/trace/<id>``: a stored trace as a waterfall, its critical path highlighted.

The page reads the trace's spans back from ``otel_traces`` (every column) and its latest
assembled version from ``tracepipe_traces``, then lays the spans out the way the assembler
analysed them: clock skew adjusted (Jaeger's adjuster, so a server span sits inside its client
call), and the critical path computed on those adjusted times (streams/assemble/critical_path.py).
The stretches of each span that are on the critical path are drawn over its bar (class
``cp-segment``) and the span's row is marked (class ``critical``); an error span has class
``error``. Clicking a row opens its details (``<details>``, no script): attributes, resource,
events, links and status. ``?span=<span id>`` opens one span's details when the page loads.
A small inline script (`TRACE_SCRIPT`) collapses and expands subtrees and finds spans; a large
trace opens collapsed (`initially_collapsed`). Above the waterfall: download as OTLP JSON
(download.py) and compare with another trace (compare.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streams.assemble.critical_path import CriticalPathSelfTime, compute_critical_path
from streams.assemble.error_origins import ErrorOrigin, error_origins
from streams.assemble.skew import adjust_clock_skew, adjusted_spans
from streams.assemble.structure import analyze_structure
from streams.config import Settings
from streams.errors import InputError
from streams.model.span import AttributeValue, Span
from streams.query import Reader, parse_trace_id
from streams.query.table import format_ms, format_quantity
from streams.query.waterfall import stored_spans, trace_summary, tree_order
from streams.query.web import Page
from streams.query.web.markup import (
    clock,
    document,
    link,
    message_page,
    service_chip,
    service_colours,
    swatch,
    table,
    text,
    trace_url,
    ui_url,
)

TICKS = 4
"""Intervals of the time axis above the waterfall (lines at every quarter)."""
TOP_SELF_TIMES = 10
"""Service/operation rows of the critical-path breakdown."""


VISIBLE_ROWS = 200
"""A larger trace opens with its subtrees collapsed below the deepest level that keeps at most
this many rows showing (a 5,000-span trace stays quick to scroll and find in)."""

TRACE_CSS = """
.trace-tools { display: flex; flex-wrap: wrap; gap: 8px 14px; align-items: center;
               margin: 8px 0; }
.trace-tools button, .trace-tools .button { font: inherit; font-size: 13px; padding: 3px 10px;
    border: 1px solid #cbd2d9; border-radius: 4px; background: #fff; color: #1f2933;
    cursor: pointer; text-decoration: none; }
.trace-tools input { font: inherit; padding: 3px 8px; border: 1px solid #cbd2d9;
                     border-radius: 4px; }
.trace-tools input[type=search] { width: 240px; }
.trace-tools input[name=b] { width: 280px; font-family: ui-monospace, Menlo, monospace;
                             font-size: 12px; }
.trace-tools form { display: flex; gap: 6px; align-items: center; margin: 0; }
button.twisty { border: 0; background: none; padding: 0; width: 14px; cursor: pointer;
                color: #52606d; font-size: 11px; flex: none; }
button.twisty::before { content: "\\25BE"; }
details.collapsed button.twisty::before { content: "\\25B8"; }
i.twisty { width: 14px; flex: none; }
details.span.match > summary { background: #fff4c2; }
details.span.match > summary .span-label .name { text-decoration: underline #d9a400 2px; }
"""

TRACE_SCRIPT = """
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll(".waterfall details.span"));
  var depth = rows.map(function (r) { return +r.getAttribute("data-depth"); });
  function isParent(i) { return i + 1 < rows.length && depth[i + 1] > depth[i]; }
  // Rows of find's matches and their ancestors: shown through collapsed subtrees, which stay
  // collapsed for when the find is cleared.
  var pinned = [];
  // A row shows when none of its ancestors is collapsed, or it is pinned (rows are in tree
  // order, so a row's ancestors are the nearest rows before it of each smaller depth).
  function layout() {
    var hideBelow = Infinity;
    for (var i = 0; i < rows.length; i++) {
      if (depth[i] > hideBelow) { rows[i].hidden = !pinned[i]; continue; }
      hideBelow = Infinity;
      rows[i].hidden = false;
      if (rows[i].classList.contains("collapsed")) { hideBelow = depth[i]; }
    }
  }
  function pin(i) {
    pinned[i] = true;
    for (var j = i - 1, d = depth[i]; j >= 0 && d > 0; j--) {
      if (depth[j] < d) {
        if (pinned[j]) { return; }
        pinned[j] = true;
        d = depth[j];
      }
    }
  }
  function setAll(collapse) {
    rows.forEach(function (r, i) {
      if (isParent(i)) { r.classList.toggle("collapsed", collapse); }
    });
    layout();
  }
  document.querySelector(".waterfall").addEventListener("click", function (e) {
    var button = e.target.closest("button.twisty");
    if (!button) { return; }
    e.preventDefault();
    button.closest("details.span").classList.toggle("collapsed");
    layout();
  });
  document.getElementById("collapse-all").addEventListener("click", function () { setAll(true); });
  document.getElementById("expand-all").addEventListener("click", function () { setAll(false); });
  var find = document.getElementById("find"), count = document.getElementById("find-count");
  var haystack = null, matches = [], current = -1;
  function text(i) {
    var parts = [rows[i].querySelector(".service").textContent,
                 rows[i].querySelector(".name").textContent];
    rows[i].querySelectorAll("[data-find] td").forEach(function (td) {
      parts.push(td.textContent);
    });
    return parts.join("\\n").toLowerCase();
  }
  find.addEventListener("input", function () {
    if (!haystack) { haystack = rows.map(function (r, i) { return text(i); }); }
    var q = find.value.trim().toLowerCase();
    matches = [];
    pinned = [];
    current = -1;
    rows.forEach(function (r, i) {
      var hit = q !== "" && haystack[i].indexOf(q) >= 0;
      r.classList.toggle("match", hit);
      if (hit) { matches.push(r); pin(i); }
    });
    layout();
    count.textContent = q === "" ? "" : matches.length + " of " + rows.length + " spans match";
    if (matches.length) { matches[0].scrollIntoView({block: "nearest"}); }
  });
  find.addEventListener("keydown", function (e) {
    if (e.key !== "Enter" || !matches.length) { return; }
    e.preventDefault();
    current = (current + 1) % matches.length;
    matches[current].scrollIntoView({block: "center"});
  });
})();
"""


@dataclass(frozen=True)
class WaterfallRow:
    """One span's row: its depth in the tree, bar and critical-path stretches in % of the trace."""

    span: Span
    """The span on skew-adjusted times."""
    depth: int
    left_pct: float
    width_pct: float
    critical: tuple[tuple[float, float], ...]
    """(left %, width %) of each stretch of this span on the critical path."""
    critical_ns: int
    """This span's own time on the critical path."""


@dataclass(frozen=True)
class Waterfall:
    """A trace laid out for the page: rows in tree order and the trace's extent."""

    rows: tuple[WaterfallRow, ...]
    start_ns: int
    duration_ns: int
    skew_adjusted: bool
    self_time: tuple[CriticalPathSelfTime, ...]
    """Critical-path self time per (service, operation), largest first."""
    warnings: tuple[str, ...]
    """Structure warnings (orphans, several roots, duplicate ids, cycles)."""
    origins: tuple[ErrorOrigin, ...] = ()
    """Where the trace's errors began (streams/assemble/error_origins.py), earliest first."""


def layout_waterfall(spans: Sequence[Span]) -> Waterfall:
    """Rows for every unique span: depth-first, children by start, on skew-adjusted times."""
    structure = analyze_structure(spans)
    adjustment = adjust_clock_skew(structure)
    shown = adjusted_spans(structure, adjustment)
    path = compute_critical_path(structure, adjustment)
    if not shown:
        return Waterfall((), 0, 0, False, (), tuple(structure.warnings))
    origins = tuple(error_origins(structure))
    start = min(s["start_time_unix_nano"] for s in shown)
    end = max(s["end_time_unix_nano"] for s in shown)
    total = max(end - start, 1)

    def pct(ns: int) -> float:
        return ns * 100 / total

    stretches: dict[str, list[tuple[float, float]]] = {}
    on_path_ns: dict[str, int] = {}
    for seg in path.segments:
        left = seg["start_time_unix_nano"] - start
        stretches.setdefault(seg["span_id"], []).append((pct(left), pct(seg["self_time_ns"])))
        on_path_ns[seg["span_id"]] = on_path_ns.get(seg["span_id"], 0) + seg["self_time_ns"]
    rows = tuple(
        WaterfallRow(
            span=span,
            depth=depth,
            left_pct=pct(span["start_time_unix_nano"] - start),
            width_pct=pct(max(0, span["end_time_unix_nano"] - span["start_time_unix_nano"])),
            critical=tuple(stretches.get(span["span_id"], ())),
            critical_ns=on_path_ns.get(span["span_id"], 0),
        )
        for depth, span in tree_order(shown)
    )
    return Waterfall(
        rows,
        start,
        end - start,
        adjustment.adjusted,
        tuple(path.self_time),
        tuple(structure.warnings),
        origins,
    )


def _offset(ns: int) -> str:
    return f"+{format_ms(ns)} ms"


def _key_values(pairs: Iterable[tuple[str, object]]) -> str:
    """A two-column table of names and values; empty when there are none."""
    rows = "".join(f'<tr><td class="k">{text(k)}</td><td>{text(v)}</td></tr>' for k, v in pairs)
    return f"<table>{rows}</table>" if rows else ""


def _attributes(values: Mapping[str, AttributeValue]) -> str:
    """Attributes as a table, sorted by key."""
    return _key_values(sorted(values.items()))


def _section(title: str, body_html: str, findable: bool = False) -> str:
    """A titled part of a span's details; `findable` ones are searched by the find box."""
    if not body_html:
        return ""
    return f"<div{' data-find' if findable else ''}><h3>{text(title)}</h3>{body_html}</div>"


def span_detail(row: WaterfallRow, trace_start_ns: int) -> str:
    """The details of one span: what it is, its status, attributes, resource, events, links."""
    span = row.span
    duration = span["end_time_unix_nano"] - span["start_time_unix_nano"]
    status = span["status_code"] + (f": {span['status_message']}" if span["status_message"] else "")
    facts: list[tuple[str, str]] = [
        ("service", span["service_name"]),
        ("operation", span["name"]),
        ("kind", span["kind"]),
        ("status", status),
        (
            "start",
            f"{_offset(span['start_time_unix_nano'] - trace_start_ns)}  "
            f"({clock(span['start_time_unix_nano'])})",
        ),
        ("duration", f"{format_ms(duration)} ms"),
        (
            "critical path",
            f"{format_ms(row.critical_ns)} ms of its own time" if row.critical_ns else "not on it",
        ),
        ("span id", span["span_id"]),
        ("parent span id", span["parent_span_id"] or "(root)"),
    ]
    if span["scope_name"]:
        facts.append(("scope", f"{span['scope_name']} {span['scope_version']}".strip()))
    if span["trace_state"]:
        facts.append(("trace state", span["trace_state"]))
    facts.append(("source format", span["source_format"]))
    about = _key_values(facts)
    events = "".join(
        f'<tr><td class="k">{text(_offset(e["time_unix_nano"] - trace_start_ns))}</td>'
        f"<td><b>{text(e['name'])}</b>{_attributes(e['attributes'])}</td></tr>"
        for e in sorted(span["events"], key=lambda e: e["time_unix_nano"])
    )
    links = "".join(
        f'<tr><td class="k">{link(trace_url(lk["trace_id"]), text(lk["trace_id"]), "mono")}</td>'
        f'<td class="mono">{text(lk["span_id"])}{_attributes(lk["attributes"])}</td></tr>'
        for lk in span["links"]
    )
    return (
        f'<div class="span-detail">{_section("Span", about)}'
        + _section("Attributes", _attributes(span["attributes"]), findable=True)
        + _section("Events", f"<table>{events}</table>" if events else "")
        + _section("Links", f"<table>{links}</table>" if links else "")
        + _section("Resource", _attributes(span["resource_attributes"]), findable=True)
        + "</div>"
    )


def initially_collapsed(
    rows: Sequence[WaterfallRow], open_span: str = "", visible: int = VISIBLE_ROWS
) -> tuple[set[int], set[int], set[int]]:
    """Indexes of the rows with children, of those collapsed when the page opens, and of the
    rows hidden under them.

    Up to `visible` rows, nothing is collapsed. Beyond, the rows with children at the deepest
    level L that keeps at most `visible` rows at depths <= L start collapsed (the roots always
    show); the ancestors of `open_span` stay expanded so the span it opens is in sight.
    """
    depths = [row.depth for row in rows]
    parents = {i for i in range(len(rows) - 1) if depths[i + 1] > depths[i]}
    if len(rows) <= visible:
        return parents, set(), set()
    per_depth = Counter(depths)
    level, shown = 0, 0
    for depth in sorted(per_depth):
        shown += per_depth[depth]
        if shown > visible:
            break
        level = depth
    collapsed = {i for i in parents if depths[i] == level}
    opened = [i for i, row in enumerate(rows) if row.span["span_id"] == open_span]
    if opened:
        reach = depths[opened[0]]
        for i in range(opened[0] - 1, -1, -1):
            if depths[i] < reach:
                collapsed.discard(i)
                reach = depths[i]
    hidden: set[int] = set()
    hide_below = -1
    for i, depth in enumerate(depths):
        if hide_below >= 0 and depth > hide_below:
            hidden.add(i)
            continue
        hide_below = depth if i in collapsed else -1
    return parents, collapsed, hidden


def waterfall_html(waterfall: Waterfall, colours: Mapping[str, str], open_span: str = "") -> str:
    """The waterfall: a time axis, then one expandable row per span (`open_span`'s open),
    each service in its colour from `colours`."""
    ticks = "".join(
        f'<span style="left:{i * 100 / TICKS:g}%">'
        f"{text(format_ms(waterfall.duration_ns * i / TICKS))} ms</span>"
        for i in range(TICKS + 1)
    )
    head = (
        '<div class="wf-head"><div>Service: operation</div>'
        f'<div class="wf-ticks">{ticks}</div><div>Duration</div></div>'
    )
    rows = []
    origin_ids = {o["span_id"] for o in waterfall.origins}
    parents, collapsed, hidden = initially_collapsed(waterfall.rows, open_span)
    for index, row in enumerate(waterfall.rows):
        span = row.span
        classes = ["span"]
        if row.critical:
            classes.append("critical")
        if span["status_code"] == "ERROR":
            classes.append("error")
        if span["span_id"] in origin_ids:
            classes.append("error-origin")
        colour = colours[span["service_name"]]
        segments = "".join(
            f'<i class="cp-segment" style="left:{left:.4f}%;width:{width:.4f}%"></i>'
            for left, width in row.critical
        )
        badge = ' <span class="err-badge">error</span>' if span["status_code"] == "ERROR" else ""
        if span["span_id"] in origin_ids:
            badge = ' <span class="err-badge">error origin</span>'
        duration = span["end_time_unix_nano"] - span["start_time_unix_nano"]
        opened = " open" if span["span_id"] == open_span else ""
        if index in collapsed:
            classes.append("collapsed")
        if index in hidden:
            opened += " hidden"
        twisty = (
            '<button type="button" class="twisty" title="collapse or expand this subtree">'
            "</button>"
            if index in parents
            else '<i class="twisty"></i>'
        )
        rows.append(
            f'<details class="{" ".join(classes)}" id="span-{text(span["span_id"])}" '
            f'data-span-id="{text(span["span_id"])}" data-depth="{row.depth}"{opened}>'
            '<summary class="span-row">'
            f'<span class="span-label" style="padding-left:{10 + 16 * row.depth}px">'
            f"{twisty}{swatch(colour)}"
            f'<span class="service">{text(span["service_name"])}</span>'
            f'<span class="name">{text(span["name"])}</span>{badge}</span>'
            f'<span class="span-timeline"><i class="span-bar" style="left:{row.left_pct:.4f}%;'
            f'width:{row.width_pct:.4f}%;background:{colour}"></i>{segments}</span>'
            f'<span class="span-duration">{text(format_ms(duration))} ms</span>'
            "</summary>"
            f"{span_detail(row, waterfall.start_ns)}</details>"
        )
    return f'<div class="waterfall">{head}{"".join(rows)}</div>'


def _self_time_table(waterfall: Waterfall, colours: Mapping[str, str]) -> str:
    """Where the critical path spent its time: service/operation, self time, share."""
    total = max(waterfall.duration_ns, 1)
    rows = [
        (
            service_chip(t["service"], colours[t["service"]]) + text(t["operation"]),
            text(format_ms(t["self_time_ns"])),
            text(format_quantity(t["self_time_ns"] * 100 / total)),
        )
        for t in waterfall.self_time[:TOP_SELF_TIMES]
    ]
    return table(("Service: operation", "Self time ms", "% of trace"), rows, numeric=(1, 2))


def _origins_table(waterfall: Waterfall, colours: Mapping[str, str]) -> str:
    """Where the trace's errors began, and the services each propagated to (each row links to
    its span)."""
    rows = [
        (
            service_chip(o["service"], colours[o["service"]])
            + f'<a href="#span-{text(o["span_id"])}">{text(o["operation"])}</a>',
            text(
                " -> ".join(o["propagated_to"])
                or ("(it is the root)" if o["reached_root"] else "(handled by its caller)")
            ),
            "yes" if o["reached_root"] else "no",
            text(o["status_message"]),
        )
        for o in waterfall.origins
    ]
    return table(("Origin: operation", "Propagated to", "Reached the root", "Status message"), rows)


def _tools(trace_id: str, waterfall: Waterfall, open_span: str) -> str:
    """Above the waterfall: collapse/expand all, find, download as OTLP JSON, compare with
    another trace; and how many rows a large trace opens with."""
    _, collapsed, hidden = initially_collapsed(waterfall.rows, open_span)
    note = ""
    if collapsed:
        note = (
            f'<p class="note collapse-note">{len(waterfall.rows) - len(hidden):,} of '
            f"{len(waterfall.rows):,} spans shown: {len(collapsed):,} subtrees start collapsed "
            "(expand all, the arrows, or find show the rest).</p>"
        )
    return (
        '<div class="trace-tools">'
        '<button type="button" id="collapse-all">Collapse all</button>'
        '<button type="button" id="expand-all">Expand all</button>'
        '<label>Find <input type="search" id="find" autocomplete="off" '
        'placeholder="service, operation, attribute"></label>'
        '<span id="find-count" class="note" role="status"></span>'
        f'<a class="button download" href="{text(download_url(trace_id))}" '
        f'download="trace-{text(trace_id)}.json">Download OTLP JSON</a>'
        f'<form class="compare" method="get" action="{text(ui_url("compare"))}">'
        f'<input type="hidden" name="a" value="{text(trace_id)}">'
        '<input type="text" name="b" placeholder="another trace id" aria-label="trace to '
        'compare with"><button type="submit">Compare</button></form>'
        "</div>" + note
    )


def download_url(trace_id: str) -> str:
    """Where the trace's spans download as OTLP JSON."""
    return f"{trace_url(trace_id)}/otlp.json"


def _summary_card(trace_id: str, waterfall: Waterfall, summary: dict[str, Any] | None) -> str:
    """The trace's headline facts: root, start, duration, spans, errors, version, warnings."""
    spans = [row.span for row in waterfall.rows]
    errors = sum(1 for s in spans if s["status_code"] == "ERROR")
    if summary is not None:
        root = f"{summary['RootService']}: {summary['RootOperation']}"
        assembled = f"version {summary['Version']}, {summary['Completion']}"
        warnings = [str(w) for w in summary["Warnings"]]
    else:
        top = waterfall.rows[0].span
        root = f"{top['service_name']}: {top['name']}"
        assembled = "not assembled yet (spans stored so far)"
        warnings = list(waterfall.warnings)
    facts = [
        ("Started", clock(waterfall.start_ns)),
        ("Duration", f"{format_ms(waterfall.duration_ns)} ms"),
        ("Spans", str(len(spans))),
        ("Errors", str(errors)),
        ("Services", str(len({s["service_name"] for s in spans}))),
        ("Assembly", assembled),
    ]
    if waterfall.skew_adjusted:
        facts.append(("Clock skew", "adjusted (times shown as the assembler corrected them)"))
    line = "".join(f"<span>{text(k)} <b>{text(v)}</b></span>" for k, v in facts)
    warned = "".join(f"<li>{text(w)}</li>" for w in warnings)
    return (
        f'<h1>{text(root)} <span class="id">{text(trace_id)}</span></h1>'
        f'<div class="card"><div class="summary-line">{line}</div>'
        + (f'<ul class="warnings">{warned}</ul>' if warned else "")
        + "</div>"
    )


def not_found(trace_id: str, summary: dict[str, Any] | None, settings: Settings) -> Page:
    """The 404 page of a trace with no stored spans: why that may be, and what to do."""
    if summary is not None and not summary["Sampled"]:
        message = (
            f"Trace {trace_id} was assembled ({summary['SpanCount']} spans, "
            f"{summary['RootService']}: {summary['RootOperation']}), but tail sampling did not "
            f"keep its spans (policy {summary['SamplingPolicy'] or 'none'}). Errors and slow "
            "traces are always kept; raise sampling.probability to keep more of the others."
        )
    else:
        message = (
            f"No spans are stored for trace {trace_id}. Check the id (tracepipe query spans "
            "lists recent ones), or search for the trace: spans are stored within "
            f"sink.batch_max_wait_ms ({settings.sink.batch_max_wait_ms} ms) of arriving and "
            f"kept for clickhouse.ttl_days ({settings.clickhouse.ttl_days} days)."
        )
    return message_page(404, "Trace not found", message, "search")


def trace_page(reader: Reader, trace_id: str, open_span: str, settings: Settings) -> Page:
    """The trace page, or a page that says why there is none (bad id, nothing stored)."""
    try:
        wanted = parse_trace_id(trace_id)
    except InputError as err:
        return message_page(400, "Not a trace id", f"{err}.", "search")
    spans = stored_spans(reader, wanted)
    summary = trace_summary(reader, wanted)
    if not spans:
        return not_found(wanted, summary, settings)
    waterfall = layout_waterfall(spans)
    legend = (
        '<div class="legend"><span><span class="sample-bar"><i></i></span> critical path: '
        "the work the trace's end waited on</span>"
        '<span><span class="err-badge">error</span> status ERROR</span>'
        "<span>click a span for its details</span></div>"
    )
    colours = service_colours(row.span["service_name"] for row in waterfall.rows)
    chips = "".join(service_chip(s, c, ui_url("", {"service": s})) for s, c in colours.items())
    opened = open_span.strip().lower()
    body = (
        f"<style>{TRACE_CSS}</style>"
        + _summary_card(wanted, waterfall, summary)
        + f"<div>{chips}</div>"
        + legend
        + _tools(wanted, waterfall, opened)
        + waterfall_html(waterfall, colours, opened)
        + "<h2>Critical path by service and operation</h2>"
        + _self_time_table(waterfall, colours)
    )
    if waterfall.origins:
        body += "<h2>Error origins</h2>" + _origins_table(waterfall, colours)
    body += f"<script>{TRACE_SCRIPT}</script>"
    title = f"Trace {wanted[:8]}"
    return Page(200, document(title, "search", body))
