"""``/ui/``: find assembled traces by service, operation, tags, minimum duration, errors and time.

Traces come from ``tracepipe_traces FINAL`` (the latest version of each), newest first. The
filters, all optional and combined with AND:

- service: the trace has a span of that service (its `Services`);
- operation and tags: the trace has one span, started in the range, with that name and carrying
  every ``key=value`` tag in its span or resource attributes (of the service, when one is
  given); read from ``otel_traces``, whose sort key leads with service and name. One span must
  match them all, as Jaeger's search does (jaegertracing/jaeger,
  plugin/storage/memory/memory.go: `validSpan` over the span's tags and its process's tags);
- min duration: the whole trace lasted at least that long (``250ms``, ``1.5s``, ``2m``);
- errors only: the trace has at least one span with status ERROR;
- since/until: the trace started in [since, until) (``15m``, ``1h``, ``now``, ISO 8601 times).

Above the results, a scatter plot of them (start time against duration, errors in red, the size
by span count, as Jaeger UI's search page draws it: jaegertracing/jaeger-ui,
SearchTracePage/SearchResults/ScatterPlot.tsx), drawn here as SVG; each point links to its
trace. Each result lists its services with their span counts (Jaeger's result list does).
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from streams.config import Settings
from streams.generate.incident import parse_duration_ns
from streams.query import Reader, quote, time_range
from streams.query.table import format_ms
from streams.query.timestamps import format_time, resolve_range
from streams.query.web import Page
from streams.query.web.markup import (
    DEFAULT_SINCE,
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
from streams.query.windows import query_table
from streams.sink.spans import DEDUPLICATED_SPANS, OTEL_TRACES
from streams.sink.traces import TRACES

DEFAULT_LIMIT = 20
MAX_LIMIT = 500
SUGGESTIONS_LIMIT = 1000
"""Most service/operation pairs offered in the form's dropdowns."""
MAX_TAGS = 20
"""Most ``key=value`` tags a search takes (each is one more condition per span read)."""


@dataclass(frozen=True)
class TraceSearch:
    """A search as the form holds it: the text the user typed, shown again above the results."""

    service: str = ""
    operation: str = ""
    tags: str = ""
    min_duration: str = ""
    errors_only: bool = False
    since: str = DEFAULT_SINCE
    until: str = "now"
    limit: str = str(DEFAULT_LIMIT)

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> TraceSearch:
        """The search a request's query parameters ask for; missing ones take the defaults."""

        def field(name: str, default: str = "") -> str:
            return params.get(name, "").strip() or default

        return cls(
            service=field("service"),
            operation=field("operation"),
            tags=field("tags"),
            min_duration=field("min_duration"),
            errors_only=field("errors") in ("1", "on", "true"),
            since=field("since", DEFAULT_SINCE),
            until=field("until", "now"),
            limit=field("limit", str(DEFAULT_LIMIT)),
        )


@dataclass(frozen=True)
class TraceQuery:
    """A search resolved against the clock: what the SQL needs."""

    since_ns: int
    until_ns: int
    limit: int
    where: str
    """The condition on tracepipe_traces."""


@dataclass(frozen=True)
class TraceHit:
    """One trace of the results: the latest assembled version's summary."""

    trace_id: str
    start_ns: int
    duration_ns: int
    span_count: int
    error_count: int
    root_service: str
    root_operation: str
    services: tuple[str, ...]
    completion: str
    sampled: bool
    spans_per_service: Mapping[str, int] = field(default_factory=dict)
    """How many of its stored spans each service has (empty when its spans were not kept)."""


def parse_tags(tags: str) -> list[tuple[str, str]]:
    """The ``key=value`` pairs of the tags field: separated by spaces, a value with spaces in
    quotes as in a shell (``http.route="/a b"``); ValueError says what to fix."""
    try:
        words = shlex.split(tags)
    except ValueError as err:
        raise ValueError(f'tags: {err} (quote a value with spaces: key="a b")') from None
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise ValueError(f"tags: {word!r} should be key=value (e.g. http.status_code=500)")
        pairs.append((key, value))
    if len(pairs) > MAX_TAGS:
        raise ValueError(f"tags: {len(pairs)} given, at most {MAX_TAGS}")
    return pairs


def tag_condition(key: str, value: str) -> str:
    """A span carries `key` = `value` in its span or resource attributes (the attribute text
    as otel_traces stores it)."""
    conditions = []
    for column in ("SpanAttributes", "ResourceAttributes"):
        match = f"{column}[{quote(key)}] = {quote(value)}"
        if not value:
            # A missing key reads as '': only a key that is there matches an empty value.
            match = f"mapContains({column}, {quote(key)}) AND {match}"
        conditions.append(f"({match})")
    return "(" + " OR ".join(conditions) + ")"


def resolve_search(search: TraceSearch, now_ns: int) -> TraceQuery:
    """The SQL condition of a search; ValueError names the field to fix and how."""
    try:
        since_ns, until_ns = resolve_range(search.since, search.until, now_ns)
    except ValueError as err:
        raise ValueError(f"time range: {err}") from None
    conditions = [time_range("Start", since_ns, until_ns)]
    if search.service:
        conditions.append(f"has(Services, {quote(search.service)})")
    tags = parse_tags(search.tags)
    if search.operation or tags:
        spans = [time_range("Timestamp", since_ns, until_ns)]
        if search.service:
            spans.append(f"ServiceName = {quote(search.service)}")
        if search.operation:
            spans.append(f"SpanName = {quote(search.operation)}")
        spans.extend(tag_condition(key, value) for key, value in tags)
        conditions.append(
            f"TraceId IN (SELECT TraceId FROM {DEDUPLICATED_SPANS} WHERE {' AND '.join(spans)})"
        )
    if search.min_duration:
        try:
            min_ns = parse_duration_ns(search.min_duration)
        except ValueError as err:
            raise ValueError(f"min duration: {err}") from None
        conditions.append(f"DurationNs >= {int(min_ns)}")
    if search.errors_only:
        conditions.append("ErrorCount > 0")
    if not search.limit.isdigit() or not 1 <= int(search.limit) <= MAX_LIMIT:
        raise ValueError(f"limit: {search.limit!r} should be a whole number from 1 to {MAX_LIMIT}")
    return TraceQuery(since_ns, until_ns, int(search.limit), " AND ".join(conditions))


def find_traces(reader: Reader, query: TraceQuery) -> list[TraceHit]:
    """The traces a resolved search matches, newest first, at most `query.limit`, each with its
    span count per service."""
    rows = query_table(
        reader,
        TRACES,
        "SELECT TraceId, Start, DurationNs, SpanCount, ErrorCount, RootService, RootOperation, "
        f"Services, Completion, Sampled FROM {TRACES} FINAL WHERE {query.where} "
        f"ORDER BY Start DESC, TraceId LIMIT {query.limit}",
    )
    hits = [
        TraceHit(
            trace_id=str(r["TraceId"]),
            start_ns=int(r["Start"]),
            duration_ns=int(r["DurationNs"]),
            span_count=int(r["SpanCount"]),
            error_count=int(r["ErrorCount"]),
            root_service=str(r["RootService"]),
            root_operation=str(r["RootOperation"]),
            services=tuple(str(s) for s in r["Services"]),
            completion=str(r["Completion"]),
            sampled=bool(r["Sampled"]),
        )
        for r in rows
    ]
    counts = spans_per_service(reader, hits)
    return [replace(hit, spans_per_service=counts.get(hit.trace_id, {})) for hit in hits]


def spans_per_service(reader: Reader, hits: Sequence[TraceHit]) -> dict[str, dict[str, int]]:
    """trace id -> service -> how many spans of it are stored, for the traces of `hits`."""
    if not hits:
        return {}
    ids = ", ".join(quote(hit.trace_id) for hit in hits)
    # A trace's spans start within [Start, Start + DurationNs]: the bounds skip the partitions
    # (days) no hit touches.
    since_ns = min(hit.start_ns for hit in hits)
    until_ns = max(hit.start_ns + hit.duration_ns for hit in hits) + 1
    rows = query_table(
        reader,
        OTEL_TRACES,
        "SELECT TraceId, ServiceName, count() AS spans "
        f"FROM {DEDUPLICATED_SPANS} WHERE TraceId IN ({ids}) "
        f"AND {time_range('Timestamp', since_ns, until_ns)} GROUP BY TraceId, ServiceName",
    )
    counts: dict[str, dict[str, int]] = {}
    for r in rows:
        counts.setdefault(str(r["TraceId"]), {})[str(r["ServiceName"])] = int(r["spans"])
    return counts


def operations_seen(reader: Reader, since_ns: int, until_ns: int) -> list[tuple[str, str]]:
    """(service, operation) pairs of the spans stored in the range, for the form's dropdowns."""
    rows = query_table(
        reader,
        OTEL_TRACES,
        "SELECT DISTINCT ServiceName AS service, SpanName AS operation "
        f"FROM {DEDUPLICATED_SPANS} WHERE {time_range('Timestamp', since_ns, until_ns)} "
        f"ORDER BY service, operation LIMIT {SUGGESTIONS_LIMIT}",
    )
    return [(str(r["service"]), str(r["operation"])) for r in rows]


def operations_of(seen: Sequence[tuple[str, str]], service: str) -> list[str]:
    """The operations `seen` of `service` (of every service when it is empty), sorted."""
    return sorted({op for svc, op in seen if not service or svc == service})


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


# The scatter plot's drawing area, in SVG user units (the SVG scales to the page's width).
PLOT_WIDTH, PLOT_HEIGHT = 1000, 220
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 64, 16, 12, 30


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above `value` (> 0)."""
    power = 10.0 ** math.floor(math.log10(value))
    return next(m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * power >= value)


def point_radius(span_count: int) -> float:
    """A point's radius: grows with the trace's span count, slowly (by its logarithm)."""
    return min(3.0 + 1.5 * math.log2(max(span_count, 1)), 12.0)


def counted(n: int, noun: str) -> str:
    """`n` and `noun`, plural unless `n` is 1: ``1 span``, ``3 spans``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def scatter_plot(hits: Sequence[TraceHit]) -> str:
    """The results as an SVG scatter plot: start time across, duration up; each point links to
    its trace and names it on hover; traces with errors are red diamonds."""
    if not hits:
        return ""
    first = min(hit.start_ns for hit in hits)
    last = max(hit.start_ns for hit in hits)
    if last == first:  # one moment: centre it in a second either side
        first, last = first - 1_000_000_000, last + 1_000_000_000
    top_ms = nice_ceiling(max(max(hit.duration_ns for hit in hits) / 1e6, 0.001))
    inner_w = PLOT_WIDTH - PLOT_LEFT - PLOT_RIGHT
    inner_h = PLOT_HEIGHT - PLOT_TOP - PLOT_BOTTOM
    bottom = PLOT_TOP + inner_h

    def x_of(ns: int) -> float:
        return PLOT_LEFT + (ns - first) / (last - first) * inner_w

    def y_of(ms: float) -> float:
        return bottom - ms / top_ms * inner_h

    axes = [
        f'<line class="axis" x1="{PLOT_LEFT}" y1="{bottom}" x2="{PLOT_WIDTH - PLOT_RIGHT}" '
        f'y2="{bottom}"></line>'
    ]
    for i in range(5):
        ms = top_ms * i / 4
        y = y_of(ms)
        axes.append(
            f'<line class="grid" x1="{PLOT_LEFT}" y1="{y:.1f}" x2="{PLOT_WIDTH - PLOT_RIGHT}" '
            f'y2="{y:.1f}"></line><text class="tick" x="{PLOT_LEFT - 6}" y="{y + 4:.1f}" '
            f'text-anchor="end">{text(format_ms(int(ms * 1e6)))} ms</text>'
        )
    for i in range(5):
        ns = first + (last - first) * i // 4
        anchor = ("start", "middle", "middle", "middle", "end")[i]
        axes.append(
            f'<text class="tick" x="{x_of(ns):.1f}" y="{bottom + 18}" text-anchor="{anchor}">'
            f"{text(clock(ns)[11:23])}</text>"
        )
    points = []
    # Slowest first, so short traces' points are drawn last, on top, and stay clickable.
    for hit in sorted(hits, key=lambda h: (-h.duration_ns, h.trace_id)):
        x, y, r = x_of(hit.start_ns), y_of(hit.duration_ns / 1e6), point_radius(hit.span_count)
        if hit.error_count:
            shape = (
                f'<path d="M{x:.1f} {y - r * 1.3:.1f}L{x + r * 1.3:.1f} {y:.1f}'
                f'L{x:.1f} {y + r * 1.3:.1f}L{x - r * 1.3:.1f} {y:.1f}Z"></path>'
            )
        else:
            shape = f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}"></circle>'
        counts = [counted(hit.span_count, "span"), counted(len(hit.services), "service")]
        if hit.error_count:
            counts.insert(1, counted(hit.error_count, "error"))
        hover = (
            f"{hit.root_service}: {hit.root_operation}\n{format_ms(hit.duration_ns)} ms, "
            f"{', '.join(counts)}\n{clock(hit.start_ns)}  {hit.trace_id}"
        )
        cls = "point error" if hit.error_count else "point"
        points.append(
            f'<a class="{cls}" href="{text(trace_url(hit.trace_id))}" '
            f'data-trace-id="{text(hit.trace_id)}"><title>{text(hover)}</title>{shape}</a>'
        )
    return (
        f'<div class="scatter card"><svg class="plot" viewBox="0 0 {PLOT_WIDTH} {PLOT_HEIGHT}" '
        'role="img" aria-label="Duration of each trace found against its start time">'
        + "".join(axes)
        + "".join(points)
        + '</svg><div class="legend"><span><svg width="12" height="12"><circle class="ok" '
        'cx="6" cy="6" r="5"></circle></svg> trace</span><span><svg width="12" height="12">'
        '<path class="bad" d="M6 0L12 6L6 12L0 6Z"></path></svg> with errors</span>'
        "<span>size: span count; click a point for its trace</span></div></div>"
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
