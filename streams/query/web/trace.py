"""``/ui/trace/<id>``: a stored trace as a waterfall, its critical path highlighted.

The page reads the trace's spans back from ``otel_traces`` (the columns the layout needs,
`LAYOUT_COLUMNS` in trace_layout.py) and its latest assembled version from ``tracepipe_traces``,
then lays the spans out the way the assembler analysed them: clock skew adjusted (Jaeger's adjuster,
so a server span sits inside its client call), and the critical path computed on those adjusted
times (streams/assemble/critical_path.py). The page carries the rows as compact JSON
(`waterfall_data`, trace_layout.py); its inline script (`TRACE_SCRIPT`, trace_script.py) draws a row
when it first shows, as Jaeger's UI draws from the trace's JSON: the stretches of each span on the
critical path over its bar (class ``cp-segment``), the row marked ``critical``, an error span
``error``. A large trace opens collapsed (`initially_collapsed`), so a 5,000-span trace draws a few
dozen rows. Clicking a row opens its details (a ``<details>`` element): attributes, resource,
events, links and status, fetched when it first opens from ``/ui/trace/<id>/span/<span id>``
(`span_details`, trace_fetch.py). ``?span=<span id>`` opens one span's details when the page loads.
The script also collapses and expands subtrees and finds spans by service, operation, attribute and
resource text (those from ``/ui/trace/<id>/find.json``, `find_text`, read when the find box is first
used). Above the waterfall: download as OTLP JSON (download.py) and compare with another trace
(compare.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.config import Settings
from streams.errors import InputError
from streams.query import Reader, parse_trace_id
from streams.query.table import format_ms, format_quantity
from streams.query.waterfall import stored_spans, trace_summary
from streams.query.web import Page
from streams.query.web.markup import (
    clock,
    document,
    message_page,
    service_chip,
    service_colours,
    table,
    text,
    trace_url,
    ui_url,
)
from streams.query.web.search import embedded_json
from streams.query.web.trace_layout import (
    LAYOUT_COLUMNS,
    Waterfall,
    initially_collapsed,
    layout_waterfall,
    waterfall_data,
)
from streams.query.web.trace_script import TRACE_CSS, TRACE_SCRIPT

TICKS = 4
"""Intervals of the time axis above the waterfall (lines at every quarter)."""
TOP_SELF_TIMES = 10
"""Service/operation rows of the critical-path breakdown."""


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
