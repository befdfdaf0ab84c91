"""``/ui/``: find assembled traces by service, operation, tags, minimum duration, errors and time.

The page is the search form (its operation dropdown follows its service dropdown), then the
traces the search finds (search_query.py: the filters and their SQL), newest first: a scatter
plot of them (search_plot.py) and a table in which each result lists its services with their
span counts (Jaeger's result list does).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from streams.config import Settings
from streams.query import Reader
from streams.query.table import format_ms
from streams.query.timestamps import format_time
from streams.query.web import Page
from streams.query.web.markup import (
    UI_ROOT,
    clock,
    document,
    link,
    problem,
    query_form,
    range_fields,
    select_field,
    service_chip,
    service_colours,
    table,
    text,
    text_field,
    trace_url,
    ui_url,
)
from streams.query.web.search_plot import scatter_plot
from streams.query.web.search_query import (
    TraceHit,
    TraceSearch,
    find_traces,
    operations_of,
    operations_seen,
    resolve_search,
)

# The operation dropdown follows the service dropdown: the same rule as `operations_of`, in the
# browser, over the pairs the page embeds. Without JavaScript, submitting the form does it.
FOLLOW_SERVICE_JS = """
(function () {
  var pairs = JSON.parse(document.getElementById("operations-seen").textContent);
  var form = document.querySelector("form.query");
  var service = form.elements["service"], operation = form.elements["operation"];
  service.addEventListener("change", function () {
    var kept = operation.value, seen = {}, ops = [];
    pairs.forEach(function (p) {
      if ((!service.value || p[0] === service.value) && !seen[p[1]]) {
        seen[p[1]] = true;
        ops.push(p[1]);
      }
    });
    ops.sort(function (a, b) { return a < b ? -1 : a > b ? 1 : 0; });
    while (operation.options.length > 1) operation.remove(1);
    ops.forEach(function (op) { operation.add(new Option(op, op, false, op === kept)); });
    if (!seen[kept]) operation.value = "";
  });
})();
"""


def embedded_json(element_id: str, value: object) -> str:
    """`value` as JSON in a ``<script type="application/json">``: ``<``, ``>`` and ``&`` written
    as escapes, so no value can close the element or start markup."""
    data = (
        json.dumps(value, ensure_ascii=False)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )
    return f'<script type="application/json" id="{text(element_id)}">{data}</script>'


def search_form(search: TraceSearch, seen: Sequence[tuple[str, str]]) -> str:
    """The search form, filled with `search`, its dropdowns offering the services and
    operations `seen` (and what the search names, seen or not)."""
    services = sorted({service for service, _ in seen} | ({search.service} - {""}))
    operations = operations_of(seen, search.service)
    if search.operation and search.operation not in operations:
        operations = sorted([*operations, search.operation])
    errors = " checked" if search.errors_only else ""
    fields = (
        select_field("service", "Service", search.service, services, "any")
        + select_field("operation", "Operation", search.operation, operations, "any")
        + text_field("tags", "Tags", search.tags, 'http.status_code=500 k="a b"', wide=True)
        + text_field("min_duration", "Min duration", search.min_duration, "250ms, 1.5s", short=True)
        + range_fields(search.since, search.until)
        + text_field("limit", "Limit", search.limit, short=True)
        + f'<label class="check"><input type="checkbox" name="errors" value="1"{errors}>'
        "Errors only</label>"
    )
    script = embedded_json("operations-seen", [list(pair) for pair in seen])
    return (
        query_form(UI_ROOT, fields, "Find traces")
        + script
        + (f"<script>{FOLLOW_SERVICE_JS}</script>")
    )


def results_table(hits: Sequence[TraceHit]) -> str:
    """The results: one row per trace, its root operation linking to its trace page, its
    services with their span counts."""
    rows = []
    bad: dict[tuple[int, int], str] = {}
    colours = service_colours(s for hit in hits for s in hit.services)
    for i, hit in enumerate(hits):
        root = link(
            trace_url(hit.trace_id),
            f"{text(hit.root_service)}: {text(hit.root_operation)}",
            "trace-link",
        )
        kept = "" if hit.sampled else ' <span class="note">(spans not kept by sampling)</span>'
        if hit.error_count:
            bad[i, 4] = "bad"
        rows.append(
            (
                text(clock(hit.start_ns)),
                f'{root} <span class="mono note">{text(hit.trace_id)}</span>{kept}',
                text(format_ms(hit.duration_ns)),
                text(hit.span_count),
                text(hit.error_count),
                "".join(
                    service_chip(
                        s,
                        colours[s],
                        ui_url("", {"service": s}),
                        count=hit.spans_per_service.get(s),
                    )
                    for s in sorted(hit.services)
                ),
                text(hit.completion),
            )
        )
    return table(
        (
            "Started (UTC)",
            "Trace",
            "Duration ms",
            "Spans",
            "Errors",
            "Services (spans)",
            "Completion",
        ),
        rows,
        numeric=(2, 3, 4),
        wrap=(5,),
        cells=bad,
    )


def search_page(reader: Reader, params: Mapping[str, str], now_ns: int, settings: Settings) -> Page:
    """The search page: the form, then the traces it matches, plotted and listed (or what to
    fix in it)."""
    search = TraceSearch.from_params(params)
    try:
        query = resolve_search(search, now_ns)
    except ValueError as err:
        body = "<h1>Search traces</h1>" + search_form(search, []) + problem(str(err))
        return Page(400, document("Search traces", "search", body))
    seen = operations_seen(reader, query.since_ns, query.until_ns)
    hits = find_traces(reader, query)
    between = f"between {format_time(query.since_ns)} and {format_time(query.until_ns)}"
    if hits:
        more = " (the newest; raise the limit for more)" if len(hits) == query.limit else ""
        results = (
            f'<p class="note">{len(hits)} traces {text(between)}, newest first{text(more)}</p>'
            + scatter_plot(hits)
            + results_table(hits)
        )
    else:
        idle_s = settings.assembly.trace_idle_ms / 1000
        results = (
            f'<p class="note" id="no-results">No traces match {text(between)}. A trace appears '
            f"here once it is assembled, {idle_s:g} s after its last span "
            "(assembly.trace_idle_ms); widen the time range or drop a filter.</p>"
        )
    body = "<h1>Search traces</h1>" + search_form(search, seen) + results
    return Page(200, document("Search traces", "search", body))
