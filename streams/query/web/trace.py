"""``/ui/trace/<id>``: a stored trace as a waterfall, its critical path highlighted.

The page reads the trace's spans back from ``otel_traces`` (the columns the layout needs,
`LAYOUT_COLUMNS`) and its latest assembled version from ``tracepipe_traces``, then lays the spans
out the way the assembler analysed them: clock skew adjusted (Jaeger's adjuster, so a server span
sits inside its client call), and the critical path computed on those adjusted times
(streams/assemble/critical_path.py). The page carries the rows as compact JSON
(`waterfall_data`); its inline script (`TRACE_SCRIPT`) draws a row when it first shows, as
Jaeger's UI draws from the trace's JSON: the stretches of each span on the critical path over its
bar (class ``cp-segment``), the row marked ``critical``, an error span ``error``. A large trace
opens collapsed (`initially_collapsed`), so a 5,000-span trace draws a few dozen rows. Clicking a
row opens its details (a ``<details>`` element): attributes, resource, events, links and status,
fetched when it first opens from ``/ui/trace/<id>/span/<span id>`` (`span_details`).
``?span=<span id>`` opens one span's details when the page loads. The script also collapses and
expands subtrees and finds spans by service, operation, attribute and resource text (those from
``/ui/trace/<id>/find.json``, `find_text`, read when the find box is first used). Above the
waterfall: download as OTLP JSON (download.py) and compare with another trace (compare.py).
"""

from __future__ import annotations

import json
import re
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
from streams.query.web.download import Download
from streams.query.web.markup import (
    clock,
    document,
    link,
    message_page,
    service_chip,
    service_colours,
    table,
    text,
    trace_url,
    ui_url,
)
from streams.query.web.search import embedded_json
from streams.sink.spans import OTEL_TRACES_COLUMNS

TICKS = 4
"""Intervals of the time axis above the waterfall (lines at every quarter)."""
TOP_SELF_TIMES = 10
"""Service/operation rows of the critical-path breakdown."""


VISIBLE_ROWS = 200
"""A larger trace opens with its subtrees collapsed below the deepest level that keeps at most
this many rows showing (a 5,000-span trace stays quick to scroll and find in)."""

ROW_FIELDS = (
    "span_id",
    "depth",
    "service",
    "name",
    "left_pct",
    "width_pct",
    "duration_ms",
    "classes",
    "critical",
    "children",
)
"""A row of `waterfall_data`, in order: `service` and `name` index its services and names,
`critical` is the flattened (left %, width %) stretches, `children` 0 for a leaf, 1 for a parent,
2 for a parent collapsed when the page opens; `classes` of the row, besides ``span``."""

DETAIL_COLUMNS = (
    "ResourceAttributes",
    "SpanAttributes",
    "ScopeName",
    "ScopeVersion",
    "TraceState",
    "Events.Timestamp",
    "Events.Name",
    "Events.Attributes",
)
"""otel_traces columns only a span's details show: the page reads the others
(`LAYOUT_COLUMNS`, links included for the critical path's follows-from rule)."""
LAYOUT_COLUMNS = tuple(c for c in OTEL_TRACES_COLUMNS if c not in DETAIL_COLUMNS)
FIND_COLUMNS = (*LAYOUT_COLUMNS, "SpanAttributes", "ResourceAttributes")
"""What find searches besides service and operation: attribute and resource keys and values."""
SPAN_ID = re.compile(r"[0-9a-f]{16}").fullmatch

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
.span-detail:empty { display: none; }
details.span.loading > summary { cursor: progress; }
"""

TRACE_SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById("trace-data").textContent);
  var waterfall = document.querySelector(".waterfall");
  var head = waterfall.querySelector(".wf-head");
  // A row (trace.ROW_FIELDS): span id, depth, service, operation, bar left %, bar width %,
  // duration, classes, critical-path stretches [left %, width %, ...], 0 leaf / 1 parent /
  // 2 parent collapsed when the page opens.
  var rows = data.rows, n = rows.length;
  var depth = rows.map(function (r) { return r[1]; });
  var collapsed = rows.map(function (r) { return r[9] === 2; });
  var at = {};
  rows.forEach(function (r, i) { at[r[0]] = i; });
  // Each row's element, made the first time the row shows: a 5,000-span trace that opens
  // collapsed makes a few dozen.
  var els = [];
  // Rows of find's matches and their ancestors: shown through collapsed subtrees, which stay
  // collapsed for when the find is cleared.
  var pinned = [], matched = [];
  function isParent(i) { return rows[i][9] > 0; }
  function add(parent, tag, cls) {
    var e = document.createElement(tag);
    e.className = cls;
    parent.appendChild(e);
    return e;
  }
  function make(i) {
    var r = rows[i], service = data.services[r[2]];
    var d = document.createElement("details");
    d.className = "span" + (r[7] ? " " + r[7] : "");
    d.classList.toggle("collapsed", collapsed[i]);
    d.classList.toggle("match", !!matched[i]);
    d.id = "span-" + r[0];
    d.setAttribute("data-span-id", r[0]);
    d.setAttribute("data-depth", r[1]);
    d.tpRow = i;
    var summary = add(d, "summary", "span-row");
    var label = add(summary, "span", "span-label");
    label.style.paddingLeft = (10 + 16 * r[1]) + "px";
    if (isParent(i)) {
      var twisty = add(label, "button", "twisty");
      twisty.type = "button";
      twisty.title = "collapse or expand this subtree";
    } else {
      add(label, "i", "twisty");
    }
    add(label, "i", "swatch").style.background = service[1];
    add(label, "span", "service").textContent = service[0];
    add(label, "span", "name").textContent = data.names[r[3]];
    if (d.classList.contains("error")) {
      label.appendChild(document.createTextNode(" "));
      add(label, "span", "err-badge").textContent =
        d.classList.contains("error-origin") ? "error origin" : "error";
    }
    var timeline = add(summary, "span", "span-timeline");
    var bar = add(timeline, "i", "span-bar");
    bar.style.left = r[4] + "%";
    bar.style.width = r[5] + "%";
    bar.style.background = service[1];
    for (var k = 0; k < r[8].length; k += 2) {
      var stretch = add(timeline, "i", "cp-segment");
      stretch.style.left = r[8][k] + "%";
      stretch.style.width = r[8][k + 1] + "%";
    }
    add(summary, "span", "span-duration").textContent = r[6] + " ms";
    add(d, "div", "span-detail");
    return d;
  }
  // A row shows when none of its ancestors is collapsed, or it is pinned (rows are in tree
  // order, so a row's ancestors are the nearest rows before it of each smaller depth).
  function layout() {
    var hideBelow = Infinity, cursor = head;
    for (var i = 0; i < n; i++) {
      var show = true;
      if (depth[i] > hideBelow) {
        show = !!pinned[i];
      } else {
        hideBelow = collapsed[i] ? depth[i] : Infinity;
      }
      if (show && !els[i]) {
        els[i] = make(i);
        cursor.after(els[i]);
      }
      if (els[i]) {
        els[i].hidden = !show;
        cursor = els[i];
      }
    }
  }
  function ancestors(i, each) {
    for (var j = i - 1, d = depth[i]; j >= 0 && d > 0; j--) {
      if (depth[j] < d) {
        if (each(j) === false) { return; }
        d = depth[j];
      }
    }
  }
  function setCollapsed(i, collapse) {
    collapsed[i] = collapse;
    if (els[i]) { els[i].classList.toggle("collapsed", collapse); }
  }
  function pin(i) {
    pinned[i] = true;
    ancestors(i, function (j) {
      if (pinned[j]) { return false; }
      pinned[j] = true;
    });
  }
  // Expands a span's ancestors and scrolls to it (an error origin's link, ?span=, #span-).
  function reveal(i) {
    ancestors(i, function (j) { setCollapsed(j, false); });
    layout();
    els[i].scrollIntoView({block: "center"});
  }
  function setAll(collapse) {
    for (var i = 0; i < n; i++) {
      if (isParent(i)) { setCollapsed(i, collapse); }
    }
    layout();
  }
  // A span's details come from the worker when the span first opens (trace.span_details).
  function load(d) {
    if (d.tpLoaded || d.tpLoading) { return; }
    d.tpLoading = true;
    d.classList.add("loading");
    var box = d.querySelector(".span-detail");
    fetch(data.span_url + encodeURIComponent(d.getAttribute("data-span-id")))
      .then(function (res) {
        return res.text().then(function (body) {
          if (res.ok) {
            box.innerHTML = body;
            d.tpLoaded = true;
            return;
          }
          var problem = new DOMParser().parseFromString(body, "text/html")
            .querySelector(".problem");
          throw new Error(problem ? problem.textContent : "HTTP " + res.status);
        });
      })
      .catch(function (err) {
        box.textContent = "The span's details did not load: " + err.message +
          " (close and open the span to try again).";
      })
      .then(function () {
        d.tpLoading = false;
        d.classList.remove("loading");
      });
  }
  waterfall.addEventListener("toggle", function (e) {
    if (e.target.matches("details.span") && e.target.open) { load(e.target); }
  }, true);
  waterfall.addEventListener("click", function (e) {
    var button = e.target.closest("button.twisty");
    if (!button) { return; }
    e.preventDefault();
    var i = button.closest("details.span").tpRow;
    setCollapsed(i, !collapsed[i]);
    layout();
  });
  document.addEventListener("click", function (e) {
    var a = e.target.closest("a[href^='#span-']");
    var i = a ? at[a.getAttribute("href").slice(6)] : undefined;
    if (i !== undefined) { reveal(i); }
  });
  document.getElementById("collapse-all").addEventListener("click", function () { setAll(true); });
  document.getElementById("expand-all").addEventListener("click", function () { setAll(false); });

  // Find: a span's service, operation, attribute and resource keys and values. The attributes
  // and resources come from the worker (trace.find_text) the first time the find box is used.
  var find = document.getElementById("find"), count = document.getElementById("find-count");
  var texts = null, failed = "", asked = false, haystack = null, matches = [], current = -1;
  function fetchTexts() {
    if (asked) { return; }
    asked = true;
    fetch(data.find_url)
      .then(function (res) {
        if (!res.ok) { throw new Error("HTTP " + res.status); }
        return res.json();
      })
      .then(function (got) { texts = got; }, function (err) { failed = err.message; })
      .then(function () { haystack = null; run(); });
  }
  function text(i) {
    var r = rows[i], parts = [data.services[r[2]][0], data.names[r[3]]];
    var own = texts && texts.spans[r[0]];
    if (own) { parts.push(own[0], texts.resources[own[1]]); }
    return parts.join("\\n").toLowerCase();
  }
  function run() {
    var q = find.value.trim().toLowerCase();
    if (q !== "" && !texts && !failed) {
      fetchTexts();
      count.textContent = "reading the spans' attributes…";
      return;
    }
    if (!haystack && q !== "") { haystack = rows.map(function (r, i) { return text(i); }); }
    matches = [];
    pinned = [];
    matched = [];
    current = -1;
    for (var i = 0; i < n; i++) {
      if (q !== "" && haystack[i].indexOf(q) >= 0) {
        matched[i] = true;
        matches.push(i);
        pin(i);
      }
    }
    layout();
    els.forEach(function (el, i) { el.classList.toggle("match", !!matched[i]); });
    count.textContent = q === "" ? "" : matches.length + " of " + n + " spans match" +
      (failed ? " (services and operations only: the attributes did not load, " + failed + ")"
              : "");
    if (matches.length) { els[matches[0]].scrollIntoView({block: "nearest"}); }
  }
  find.addEventListener("focus", fetchTexts);
  find.addEventListener("input", run);
  find.addEventListener("keydown", function (e) {
    if (e.key !== "Enter" || !matches.length) { return; }
    e.preventDefault();
    current = (current + 1) % matches.length;
    els[matches[current]].scrollIntoView({block: "center"});
  });

  layout();
  var wanted = at[data.open];
  if (wanted === undefined && location.hash.indexOf("#span-") === 0) {
    wanted = at[location.hash.slice(6)];
  }
  if (wanted !== undefined) {
    reveal(wanted);
    if (data.open) { els[wanted].open = true; }
  }
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


def _section(title: str, body_html: str) -> str:
    """A titled part of a span's details."""
    if not body_html:
        return ""
    return f"<div><h3>{text(title)}</h3>{body_html}</div>"


def span_detail(row: WaterfallRow, trace_start_ns: int) -> str:
    """The details of one span: what it is, its status, attributes, resource, events, links
    (the sections of its row's ``.span-detail``)."""
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
        _section("Span", about)
        + _section("Attributes", _attributes(span["attributes"]))
        + _section("Events", f"<table>{events}</table>" if events else "")
        + _section("Links", f"<table>{links}</table>" if links else "")
        + _section("Resource", _attributes(span["resource_attributes"]))
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


def waterfall_data(
    trace_id: str, waterfall: Waterfall, colours: Mapping[str, str], open_span: str = ""
) -> dict[str, Any]:
    """What the page's script draws the waterfall from: one compact row per span (ROW_FIELDS),
    services and operation names once each, the span to open, and where the script fetches a
    span's details and the texts find searches."""
    origin_ids = {o["span_id"] for o in waterfall.origins}
    parents, collapsed, _ = initially_collapsed(waterfall.rows, open_span)
    services = list(colours)
    service_index = {s: i for i, s in enumerate(services)}
    names: dict[str, int] = {}
    rows: list[list[Any]] = []
    for index, row in enumerate(waterfall.rows):
        span = row.span
        classes = []
        if row.critical:
            classes.append("critical")
        if span["status_code"] == "ERROR":
            classes.append("error")
        if span["span_id"] in origin_ids:
            classes.append("error-origin")
        rows.append(
            [
                span["span_id"],
                row.depth,
                service_index[span["service_name"]],
                names.setdefault(span["name"], len(names)),
                round(row.left_pct, 4),
                round(row.width_pct, 4),
                format_ms(span["end_time_unix_nano"] - span["start_time_unix_nano"]),
                " ".join(classes),
                [round(x, 4) for stretch in row.critical for x in stretch],
                2 if index in collapsed else 1 if index in parents else 0,
            ]
        )
    return {
        "services": [[s, colours[s]] for s in services],
        "names": list(names),
        "rows": rows,
        "open": open_span,
        "span_url": f"{trace_url(trace_id)}/span/",
        "find_url": f"{trace_url(trace_id)}/find.json",
    }


def waterfall_html(
    trace_id: str, waterfall: Waterfall, colours: Mapping[str, str], open_span: str = ""
) -> str:
    """The waterfall: a time axis, and its rows as data (`waterfall_data`) for the page's script
    to draw, each span's row expandable (`open_span`'s open), each service in its colour."""
    ticks = "".join(
        f'<span style="left:{i * 100 / TICKS:g}%">'
        f"{text(format_ms(waterfall.duration_ns * i / TICKS))} ms</span>"
        for i in range(TICKS + 1)
    )
    head = (
        '<div class="wf-head"><div>Service: operation</div>'
        f'<div class="wf-ticks">{ticks}</div><div>Duration</div></div>'
    )
    fallback = (
        '<noscript><p class="note">The page\'s script draws the spans: without it, download the '
        f"trace as OTLP JSON or run <code>tracepipe trace {text(trace_id)}</code>.</p></noscript>"
    )
    return (
        f'<div class="waterfall">{head}{fallback}</div>'
        + embedded_json("trace-data", waterfall_data(trace_id, waterfall, colours, open_span))
    )


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
    spans = stored_spans(reader, wanted, LAYOUT_COLUMNS)
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
        + waterfall_html(wanted, waterfall, colours, opened)
        + "<h2>Critical path by service and operation</h2>"
        + _self_time_table(waterfall, colours)
    )
    if waterfall.origins:
        body += "<h2>Error origins</h2>" + _origins_table(waterfall, colours)
    body += f"<script>{TRACE_SCRIPT}</script>"
    title = f"Trace {wanted[:8]}"
    return Page(200, document(title, "search", body))


def span_details(reader: Reader, trace_id: str, span_id: str) -> Page:
    """One span's details (`span_detail`), the HTML the trace page's script puts in its row,
    laid out as on the page (skew-adjusted times, critical path); a page that says what is
    wrong when the ids are malformed (400) or the span is not stored (404)."""
    try:
        wanted = parse_trace_id(trace_id)
    except InputError as err:
        return message_page(400, "Not a trace id", f"{err}.", "search")
    span = span_id.strip().lower()
    if not SPAN_ID(span):
        return message_page(
            400, "Not a span id", f"{span_id!r} is not a span id: give 16 hex digits.", "search"
        )
    full = stored_spans(reader, wanted, span_id=span)
    if not full:
        return message_page(
            404,
            "Span not found",
            f"Trace {wanted} has no span {span} stored: reload the trace page "
            "(the span's id was mistyped, or its trace expired).",
            "search",
        )
    # Every other span only as the layout needs it: this span's times depend on the whole trace.
    spans = [
        full[0] if s["span_id"] == span else s for s in stored_spans(reader, wanted, LAYOUT_COLUMNS)
    ]
    waterfall = layout_waterfall(spans)
    row = next(r for r in waterfall.rows if r.span["span_id"] == span)
    return Page(200, span_detail(row, waterfall.start_ns))


def _find_text(values: Mapping[str, AttributeValue]) -> str:
    """Keys and values as the details show them, one a line, sorted by key."""
    return "\n".join(k + "\n" + str(v) for k, v in sorted(values.items()))


def find_text(reader: Reader, trace_id: str) -> Download | Page:
    """What the trace page's find searches besides services and operations, as JSON: each
    span's attributes and the index of its resource's text (resources are shared by many
    spans); a page that says why there is none (bad id, nothing stored)."""
    try:
        wanted = parse_trace_id(trace_id)
    except InputError as err:
        return message_page(400, "Not a trace id", f"{err}.", "search")
    spans = stored_spans(reader, wanted, FIND_COLUMNS)
    if not spans:
        return message_page(
            404,
            "Trace not found",
            f"No spans are stored for trace {wanted}: nothing to find in. Reload the trace page.",
            "search",
        )
    resources: dict[str, int] = {}
    texts = {
        s["span_id"]: [
            _find_text(s["attributes"]),
            resources.setdefault(_find_text(s["resource_attributes"]), len(resources)),
        ]
        for s in spans
    }
    body = json.dumps({"resources": list(resources), "spans": texts}, ensure_ascii=False)
    return Download(body.encode(), "application/json", f"trace-{wanted}-find.json")
