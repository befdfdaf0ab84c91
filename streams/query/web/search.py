"""``/ui/``: find assembled traces by service, operation, minimum duration, errors and time range.

Traces come from ``tracepipe_traces FINAL`` (the latest version of each), newest first. The
filters, all optional and combined with AND:

- service: the trace has a span of that service (its `Services`);
- operation: the trace has a span with that name (of the service, when one is given) that
  started in the range (read from ``otel_traces``, whose sort key leads with service and name);
- min duration: the whole trace lasted at least that long (``250ms``, ``1.5s``, ``2m``);
- errors only: the trace has at least one span with status ERROR;
- since/until: the trace started in [since, until) (``15m``, ``1h``, ``now``, ISO 8601 times).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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
    datalist,
    document,
    link,
    problem,
    query_form,
    range_fields,
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
"""Most service/operation pairs offered as suggestions in the form."""


@dataclass(frozen=True)
class TraceSearch:
    """A search as the form holds it: the text the user typed, shown again above the results."""

    service: str = ""
    operation: str = ""
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


def resolve_search(search: TraceSearch, now_ns: int) -> TraceQuery:
    """The SQL condition of a search; ValueError names the field to fix and how."""
    try:
        since_ns, until_ns = resolve_range(search.since, search.until, now_ns)
    except ValueError as err:
        raise ValueError(f"time range: {err}") from None
    conditions = [time_range("Start", since_ns, until_ns)]
    if search.service:
        conditions.append(f"has(Services, {quote(search.service)})")
    if search.operation:
        spans = [
            f"SpanName = {quote(search.operation)}",
            time_range("Timestamp", since_ns, until_ns),
        ]
        if search.service:
            spans.insert(0, f"ServiceName = {quote(search.service)}")
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
    """The traces a resolved search matches, newest first, at most `query.limit`."""
    rows = query_table(
        reader,
        TRACES,
        "SELECT TraceId, Start, DurationNs, SpanCount, ErrorCount, RootService, RootOperation, "
        f"Services, Completion, Sampled FROM {TRACES} FINAL WHERE {query.where} "
        f"ORDER BY Start DESC, TraceId LIMIT {query.limit}",
    )
    return [
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


def operations_seen(reader: Reader, since_ns: int, until_ns: int) -> list[tuple[str, str]]:
    """(service, operation) pairs of the spans stored in the range, for the form's suggestions."""
    rows = query_table(
        reader,
        OTEL_TRACES,
        "SELECT DISTINCT ServiceName AS service, SpanName AS operation "
        f"FROM {DEDUPLICATED_SPANS} WHERE {time_range('Timestamp', since_ns, until_ns)} "
        f"ORDER BY service, operation LIMIT {SUGGESTIONS_LIMIT}",
    )
    return [(str(r["service"]), str(r["operation"])) for r in rows]


def search_form(search: TraceSearch, seen: Sequence[tuple[str, str]]) -> str:
    """The search form, filled with `search`, suggesting the services and operations `seen`."""
    services = sorted({service for service, _ in seen})
    operations = sorted(
        {op for service, op in seen if not search.service or service == search.service}
    )
    errors = " checked" if search.errors_only else ""
    fields = (
        text_field("service", "Service", search.service, "any", suggestions="services")
        + text_field("operation", "Operation", search.operation, "any", suggestions="operations")
        + text_field("min_duration", "Min duration", search.min_duration, "250ms, 1.5s", short=True)
        + range_fields(search.since, search.until)
        + text_field("limit", "Limit", search.limit, short=True)
        + f'<label class="check"><input type="checkbox" name="errors" value="1"{errors}>'
        "Errors only</label>" + datalist("services", services) + datalist("operations", operations)
    )
    return query_form(UI_ROOT, fields, "Find traces")


def results_table(hits: Sequence[TraceHit]) -> str:
    """The results: one row per trace, its root operation linking to its trace page."""
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
                    service_chip(s, colours[s], ui_url("", {"service": s}))
                    for s in sorted(hit.services)
                ),
                text(hit.completion),
            )
        )
    return table(
        ("Started (UTC)", "Trace", "Duration ms", "Spans", "Errors", "Services", "Completion"),
        rows,
        numeric=(2, 3, 4),
        wrap=(5,),
        cells=bad,
    )


def search_page(reader: Reader, params: Mapping[str, str], now_ns: int, settings: Settings) -> Page:
    """The search page: the form, then the traces it matches (or what to fix in it)."""
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
