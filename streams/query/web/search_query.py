"""A trace search: the form's text (`TraceSearch`), resolved against the clock into SQL
(`TraceQuery`), and the traces it finds (`TraceHit`).

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
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from streams.generate.incident import parse_duration_ns
from streams.query import Reader, quote, time_range
from streams.query.timestamps import resolve_range
from streams.query.web.markup import (
    DEFAULT_SINCE,
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
