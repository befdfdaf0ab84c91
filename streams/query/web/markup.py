"""The web view's HTML pieces: escaping, links, service colours, tables, forms and the page shell.

One escaping rule: `text()` (html.escape with quotes) for every value that came from data or
from the request. Functions that return HTML return markup that is safe to concatenate;
their string arguments named `*_html` must be markup already, every other argument is text.
"""

from __future__ import annotations

import html
import zlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import quote as quote_path
from urllib.parse import urlencode

from streams.query.timestamps import resolve_range
from streams.query.web import Page

UI_ROOT = "/ui/"
"""Where the worker serves the web view (Faust's own index already answers on ``/``)."""
DEFAULT_SINCE = "1h"
"""The time range every page starts with: the last hour."""
ERROR_RATE_WARN = 0.01
"""Error rates from 1% up are shown in red: below that, a few failures are routine noise."""

# Distinct on white, and none of them red, which marks errors: Tableau 10's hues without its red,
# then three more that stay apart from those.
SERVICE_PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#b07aa1",
    "#76b7b2",
    "#edc948",
    "#9c755f",
    "#ff9da7",
    "#bab0ac",
    "#17becf",
    "#bcbd22",
    "#6b4c9a",
)

NAV = (
    ("search", "Search", UI_ROOT),
    ("services", "Services", f"{UI_ROOT}services"),
    ("graph", "Service graph", f"{UI_ROOT}graph"),
)

CSS = """
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1f2933; background: #f5f7fa; }
header { background: #1f2933; padding: 0 24px; }
nav { display: flex; gap: 4px; align-items: center; height: 48px; }
nav a { color: #cbd2d9; text-decoration: none; padding: 6px 12px; border-radius: 4px; }
nav a.brand { color: #fff; font-weight: 700; margin-right: 16px; padding-left: 0; }
nav a.active, nav a:hover { color: #fff; background: #3e4c59; }
main { padding: 20px 24px 40px; }
h1 { font-size: 20px; margin: 0 0 12px; font-weight: 600; }
h1 .id { font: 14px ui-monospace, SFMono-Regular, Menlo, monospace; color: #616e7c; }
h2 { font-size: 16px; margin: 24px 0 8px; font-weight: 600; }
a { color: #2f6fb0; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 13px; }
.card { background: #fff; border: 1px solid #e4e7eb; border-radius: 6px; padding: 14px 16px;
        margin-bottom: 16px; }
.note { color: #616e7c; }
.problem { background: #fff1f0; border: 1px solid #f5c2c0; color: #8a1c1c; border-radius: 6px;
           padding: 12px 16px; margin-bottom: 16px; }
form.query { display: flex; flex-wrap: wrap; gap: 12px 16px; align-items: flex-end; }
form.query label { display: flex; flex-direction: column; font-size: 12px; color: #52606d;
                   gap: 3px; }
form.query label.check { flex-direction: row; align-items: center; gap: 6px; font-size: 14px;
                         color: #1f2933; padding-bottom: 6px; }
form.query input[type=text] { font: inherit; padding: 5px 8px; border: 1px solid #cbd2d9;
                              border-radius: 4px; width: 170px; }
form.query input.short { width: 90px; }
form.query input.wide { width: 280px; }
form.query select { font: inherit; padding: 4px 6px; border: 1px solid #cbd2d9;
                    border-radius: 4px; width: 190px; background: #fff; }
.svc .count { color: #616e7c; font-variant-numeric: tabular-nums; }
.scatter svg.plot { width: 100%; height: auto; display: block; }
.scatter .legend svg { vertical-align: middle; }
.scatter .axis { stroke: #9aa5b1; }
.scatter .grid { stroke: #eef1f4; }
.scatter .tick { font-size: 11px; fill: #616e7c; }
.scatter .point circle, .legend circle.ok { fill: #2f6fb0; fill-opacity: .55; stroke: #2f6fb0; }
.scatter .point.error path, .legend path.bad { fill: #c62828; fill-opacity: .7;
                                               stroke: #8a1c1c; }
.scatter .point:hover circle, .scatter .point:hover path { fill-opacity: 1; stroke: #111827;
                                                          stroke-width: 2; }
form.query button { font: inherit; padding: 6px 16px; border: 0; border-radius: 4px;
                    background: #2f6fb0; color: #fff; cursor: pointer; }
table.data { border-collapse: collapse; width: 100%; background: #fff; }
table.data th, table.data td { text-align: left; padding: 6px 10px;
                               border-bottom: 1px solid #e4e7eb; white-space: nowrap; }
table.data th { font-size: 12px; color: #52606d; font-weight: 600; background: #f5f7fa; }
table.data td.num, table.data th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.data tr:hover td { background: #f0f4f8; }
td.bad { color: #c62828; font-weight: 600; }
table.data td.wrap { white-space: normal; }
.svc { display: inline-flex; align-items: center; gap: 5px; margin-right: 10px;
       white-space: nowrap; }
.svc a { color: inherit; text-decoration: none; }
.svc a:hover { text-decoration: underline; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px;
          flex: none; }
.err-badge { color: #fff; background: #c62828; border-radius: 3px; padding: 0 5px;
             font-size: 11px; font-weight: 700; }
.summary-line { display: flex; flex-wrap: wrap; gap: 6px 24px; }
.summary-line b { font-weight: 600; }
.legend { display: flex; gap: 20px; align-items: center; color: #52606d; font-size: 12px;
          margin: 8px 0; }
.legend .sample-bar { display: inline-block; width: 36px; height: 12px; border-radius: 2px;
                      background: #9aa5b1; position: relative; vertical-align: middle; }
.legend .sample-bar i { position: absolute; left: 6px; right: 6px; top: 4px; height: 4px;
                        background: #111827; }
.waterfall { background: #fff; border: 1px solid #e4e7eb; border-radius: 6px; }
.wf-head, .span-row { display: grid; grid-template-columns: minmax(260px, 32%) 1fr 84px;
                      align-items: center; }
.wf-head { font-size: 12px; color: #52606d; border-bottom: 1px solid #e4e7eb;
           background: #f5f7fa; height: 28px; }
.wf-head > div { padding: 0 10px; }
.wf-ticks { position: relative; height: 100%; }
.wf-ticks span { position: absolute; top: 6px; transform: translateX(-50%);
                 white-space: nowrap; }
.wf-ticks span:first-child { transform: none; }
.wf-ticks span:last-child { transform: translateX(-100%); }
details.span { border-bottom: 1px solid #f0f2f5; }
details.span > summary { list-style: none; cursor: pointer; }
details.span > summary::-webkit-details-marker { display: none; }
.span-row { min-height: 26px; }
.span-row:hover { background: #f0f4f8; }
details.span[open] > summary { background: #e8f0fa; }
.span-label { display: flex; align-items: center; gap: 6px; overflow: hidden;
              white-space: nowrap; padding: 3px 10px; border-left: 3px solid transparent; }
details.critical > summary .span-label { border-left-color: #111827; }
.span-label .service { color: #52606d; }
.span-label .name { font-weight: 500; overflow: hidden; text-overflow: ellipsis; }
details.error > summary .span-label .name { color: #c62828; }
.span-timeline { position: relative; height: 26px; margin: 0 10px;
                 background: repeating-linear-gradient(90deg, transparent 0, transparent
                 calc(25% - 1px), #eef1f4 calc(25% - 1px), #eef1f4 25%); }
.span-bar { position: absolute; top: 6px; height: 14px; min-width: 2px; border-radius: 2px;
            opacity: .9; }
details.error > summary .span-bar { outline: 2px solid #c62828; outline-offset: -1px; }
.cp-segment { position: absolute; top: 11px; height: 4px; min-width: 2px;
              background: #111827; }
.span-duration { text-align: right; padding-right: 10px; font-variant-numeric: tabular-nums;
                 color: #3e4c59; }
.span-detail { padding: 10px 16px 14px 24px; background: #fafbfc;
               border-top: 1px solid #e4e7eb; display: grid; gap: 12px;
               grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); }
.span-detail h3 { font-size: 12px; text-transform: uppercase; letter-spacing: .04em;
                  color: #52606d; margin: 0 0 4px; }
.span-detail table { border-collapse: collapse; width: 100%; }
.span-detail td { padding: 2px 8px 2px 0; vertical-align: top; font-size: 13px;
                  word-break: break-all; }
.span-detail td.k { color: #52606d; white-space: nowrap; word-break: normal; width: 1%; }
.graph svg { background: #fff; border: 1px solid #e4e7eb; border-radius: 6px; max-width: 100%;
             height: auto; }
.graph .node rect { fill: #fff; stroke: #7b8794; stroke-width: 1.2; }
.graph .node.peer rect { stroke-dasharray: 4 3; fill: #f5f7fa; }
.graph .node text { font-size: 13px; fill: #1f2933; }
.graph .edge path { fill: none; stroke: #9aa5b1; }
.graph .edge.errors path { stroke: #c62828; }
.graph .edge-label text { font-size: 11px; fill: #52606d; }
.graph .edge-label.errors text { fill: #c62828; }
.graph .edge-label rect.label { fill: #fff; fill-opacity: .9; stroke: #e4e7eb; }
.graph .edge-label .leader { stroke: #9aa5b1; stroke-width: 1; stroke-dasharray: 2 2; }
.graph .node text.red { font-size: 11px; fill: #52606d; }
.graph .node text.red.bad { fill: #c62828; font-weight: 600; }
tr:target td { background: #fff7d6; }
"""


def text(value: object) -> str:
    """Any value as HTML text: every ``<``, ``>``, ``&`` and quote escaped."""
    return html.escape(str(value), quote=True)


def ui_url(path: str = "", params: Mapping[str, str] | None = None) -> str:
    """A URL of the web view: ``/ui/<path>`` with the non-empty `params` as its query."""
    query = urlencode({k: v for k, v in (params or {}).items() if v})
    return f"{UI_ROOT}{path}" + (f"?{query}" if query else "")


def trace_url(trace_id: str) -> str:
    """The trace page of `trace_id`."""
    return f"{UI_ROOT}trace/{quote_path(trace_id, safe='')}"


def link(href: str, label_html: str, cls: str = "") -> str:
    """An ``<a>``; `href` is escaped, `label_html` is markup."""
    css = f' class="{text(cls)}"' if cls else ""
    return f'<a href="{text(href)}"{css}>{label_html}</a>'


def service_colours(services: Iterable[str]) -> dict[str, str]:
    """A colour for each service of a page, distinct while the palette lasts.

    Each service starts from the palette entry its name's CRC-32 picks and moves on past the
    entries taken by the services before it in name order, so a set of services always gets
    the same colours, and a service mostly keeps its colour from page to page.
    """
    colours: dict[str, str] = {}
    taken: set[int] = set()
    for service in sorted(set(services)):
        slot = zlib.crc32(service.encode()) % len(SERVICE_PALETTE)
        while slot in taken and len(taken) < len(SERVICE_PALETTE):
            slot = (slot + 1) % len(SERVICE_PALETTE)
        taken.add(slot)
        if len(taken) == len(SERVICE_PALETTE):
            taken.clear()  # more services than colours: start sharing
        colours[service] = SERVICE_PALETTE[slot]
    return colours


def swatch(colour: str) -> str:
    """A small square of a service's colour."""
    return f'<i class="swatch" style="background:{text(colour)}"></i>'


def service_chip(service: str, colour: str, href: str = "", count: int | None = None) -> str:
    """A service name after its colour swatch, linked when `href` is given, then `count` (how
    many spans of it) when given."""
    name = link(href, text(service)) if href else text(service)
    number = f' <span class="count">{text(count)}</span>' if count is not None else ""
    return f'<span class="svc">{swatch(colour)}{name}{number}</span>'


def clock(time_unix_nano: int) -> str:
    """A unix-ns time as UTC with milliseconds: ``2026-01-02 15:04:05.123Z``."""
    # Whole seconds and milliseconds apart: a float of the seconds could round 0.123 to 0.122.
    moment = datetime.fromtimestamp(time_unix_nano // 1_000_000_000, UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{time_unix_nano // 1_000_000 % 1000:03d}Z"


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    numeric: Collection[int] = (),
    wrap: Collection[int] = (),
    cells: Mapping[tuple[int, int], str] | None = None,
    row_ids: Sequence[str] = (),
) -> str:
    """A data table: `headers` are text, cells are markup; `numeric` columns align right,
    `wrap` columns may break lines; `cells` adds a class to single cells (``bad``: worrying);
    `row_ids` gives the rows ids (link targets, highlighted when targeted)."""
    extra = cells or {}

    def cls(row: int, col: int) -> str:
        names = ["num"] if col in numeric else ["wrap"] if col in wrap else []
        if (row, col) in extra:
            names.append(extra[row, col])
        return f' class="{" ".join(names)}"' if names else ""

    head = "".join(f"<th{cls(-1, i)}>{text(h)}</th>" for i, h in enumerate(headers))
    ids = [f' id="{text(i)}"' for i in row_ids]
    body = "".join(
        f"<tr{ids[r] if r < len(ids) else ''}>"
        + "".join(f"<td{cls(r, c)}>{cell}</td>" for c, cell in enumerate(row)) + "</tr>"
        for r, row in enumerate(rows)
    )
    return f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def text_field(
    name: str,
    label: str,
    value: str,
    placeholder: str = "",
    short: bool = False,
    wide: bool = False,
) -> str:
    """A labelled text input of a query form."""
    attrs = [f'type="text" name="{text(name)}" value="{text(value)}"']
    if placeholder:
        attrs.append(f'placeholder="{text(placeholder)}"')
    if short or wide:
        attrs.append(f'class="{"short" if short else "wide"}"')
    return f"<label>{text(label)}<input {' '.join(attrs)}></label>"


def select_field(
    name: str, label: str, value: str, options: Iterable[str], empty_label: str = ""
) -> str:
    """A labelled dropdown of a query form, `value` selected; `empty_label` names a first
    option with the empty value (no filter)."""
    choices = [("", empty_label)] if empty_label else []
    choices += [(o, o) for o in options]
    html_options = "".join(
        f'<option value="{text(v)}"{" selected" if v == value else ""}>{text(shown)}</option>'
        for v, shown in choices
    )
    return f'<label>{text(label)}<select name="{text(name)}">{html_options}</select></label>'


def range_fields(since: str, until: str) -> str:
    """The since/until inputs every page shares (durations ago, ``now`` or ISO 8601 times)."""
    return text_field("since", "Since", since, "15m, 1h, 2d", short=True) + text_field(
        "until", "Until", until, "now", short=True
    )


def query_form(action: str, fields_html: str, button: str) -> str:
    """A GET form that reloads the page with its fields as the query."""
    return (
        f'<form class="query card" method="get" action="{text(action)}">{fields_html}'
        f'<button type="submit">{text(button)}</button></form>'
    )


def ranged_page(
    title: str,
    active: str,
    params: Mapping[str, str],
    now_ns: int,
    content: Callable[[int, int], str],
) -> Page:
    """A page over a time range: its heading, the since/until form, then `content(since_ns,
    until_ns)`; a range that does not parse gives the form again and what to fix (400)."""
    since = params.get("since", "").strip() or DEFAULT_SINCE
    until = params.get("until", "").strip() or "now"
    top = f"<h1>{text(title)}</h1>" + query_form(ui_url(active), range_fields(since, until), "Show")
    try:
        since_ns, until_ns = resolve_range(since, until, now_ns)
    except ValueError as err:
        return Page(400, document(title, active, top + problem(str(err))))
    return Page(200, document(title, active, top + content(since_ns, until_ns)))


def problem(message: str) -> str:
    """A box that says what went wrong and what to do (the message is text)."""
    return f'<div class="problem" role="alert">{text(message)}</div>'


def document(title: str, active: str, body_html: str) -> str:
    """A complete HTML page: the navigation (with `active` highlighted), then `body_html`."""
    nav = "".join(
        link(href, text(label), "active" if key == active else "") for key, label, href in NAV
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{text(title)} · tracepipe</title><style>{CSS}</style></head><body>"
        f"<header><nav>{link(UI_ROOT, 'tracepipe', 'brand')}{nav}</nav></header>"
        f"<main>{body_html}</main></body></html>"
    )


def message_page(status: int, title: str, message: str, active: str = "") -> Page:
    """A page that only says something (not found, bad input, a failed query) and what to do."""
    body = f"<h1>{text(title)}</h1>{problem(message)}<p>{link(UI_ROOT, 'Search traces')}</p>"
    return Page(status, document(title, active, body))
