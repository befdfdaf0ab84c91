"""The trace web view: server-rendered HTML pages over the stored data.

Every page is a plain function of a `Reader` (and the request's query parameters) that returns
a `Page`; nothing here imports Faust. The worker serves them under ``/ui/`` (streams/app.py),
running each page on its writer thread, where the warehouse lives. Modules:

- `markup`: escaping, links, service colours, tables, the page shell and its CSS
- `search`: ``/ui/`` — find assembled traces by service, operation, tags, duration, errors,
  time (`search_query`); a scatter plot of the results (`search_plot`)
- `trace`: ``/ui/trace/<id>`` — the waterfall, critical path highlighted, span details,
  collapsible subtrees and find (its inline script, `trace_script`, draws the rows from the
  page's JSON, `trace_layout`); `trace_fetch`: ``/ui/trace/<id>/span/<span id>`` one span's
  details and ``/ui/trace/<id>/find.json`` what find searches, both fetched by that script
- `download`: ``/ui/trace/<id>/otlp.json`` — the trace's stored spans as OTLP/JSON
- `compare`: ``/ui/compare?a=<id>&b=<id>`` — two traces' spans grouped as Jaeger's comparison
- `services`: ``/ui/services`` — RED per service and operation from the final latency windows
- `graph`: ``/ui/graph`` — the service graph from the final edge windows, as SVG and a table;
  `graph_layers` its layering, `graph_placement` where its boxes, lines and labels go

A span's details open with HTML's own ``<details>`` element; the only scripts are a few inline
lines: the trace page's rows, details, collapse and find (it fetches from the worker that served
the page, nothing else), and the search page's operation dropdown that follows its service
dropdown (no library; without it submitting the form does the same).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    """An HTTP answer of the web view: status code and a complete HTML document (or the
    fragment a page's script asks for, e.g. a span's details)."""

    status: int
    html: str
