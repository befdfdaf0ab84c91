"""`tracepipe query errors`: where one service's errors originated, over a time range.

A service's errors are the error origins (tracepipe_error_origins, the latest version of each
trace started in the range) in that service or whose errors propagated to it; an error another
service handled before it reached this one is not among them. Each origin service/operation is
listed with the share of the service's error traces it appears in; a trace with two origins
counts for both, so shares can add up to more than 100%.

The error-origin windows (tracepipe_error_origin_windows, aggregated in the latency windows'
pipeline) answer the same per operation and window without reading trace rows:
`windowed_origins` sums them over a range (what error-rate alerts carry), `operation_origins`
gives each of a service's operations its error traces and top origin, `service_origins` each
service its top origin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streams.query import Reader, quote, time_range
from streams.sink.traces import ERROR_ORIGINS
from streams.sink.windows import ERROR_ORIGIN_WINDOWS


@dataclass(frozen=True)
class OriginShare:
    """One service/operation where errors of the asked service originated."""

    service: str
    operation: str
    traces: int
    """The asked service's error traces with an origin here."""
    share: float
    """`traces` over all the asked service's error traces, 0..1."""
    origin_spans: int
    reached_root: int
    """Traces in which an error from here reached the root span."""
    propagated_to: tuple[str, ...]
    """Every service errors from here propagated to, sorted."""
    status_message: str
    """The latest trace's first origin message."""
    example_trace_id: str
    """The latest such trace."""


def error_origin_summary(
    reader: Reader, service: str, since_ns: int, until_ns: int
) -> tuple[int, list[OriginShare]]:
    """How many traces started in [since, until) `service` erred in, and where those errors
    originated, most traces first ((0, []) when none)."""
    in_range = time_range("Start", since_ns, until_ns)
    # A re-emitted trace may have other origins than its first version: its latest version only.
    latest = (
        f"(TraceId, Version) IN (SELECT TraceId, max(Version) FROM {ERROR_ORIGINS} "
        f"WHERE {in_range} GROUP BY TraceId)"
    )
    wanted = quote(service)
    # Origins whose errors `service` had: in it, or propagated to it. An error another service
    # handled before it reached `service` is not one of its errors.
    theirs = f"{in_range} AND {latest} AND (ServiceName = {wanted} OR has(PropagatedTo, {wanted}))"
    rows = reader.query_dicts(
        "SELECT ServiceName AS service, SpanName AS operation, uniqExact(TraceId) AS traces, "
        "sum(OriginSpans) AS origin_spans, uniqExactIf(TraceId, ReachedRoot) AS reached_root, "
        "arraySort(groupUniqArrayArray(PropagatedTo)) AS propagated_to, "
        "argMax(StatusMessage, (Start, TraceId)) AS message, "
        "argMax(TraceId, (Start, TraceId)) AS example "
        f"FROM {ERROR_ORIGINS} FINAL WHERE {theirs} "
        "GROUP BY service, operation ORDER BY traces DESC, service, operation"
    )
    if not rows:
        return 0, []
    (total,) = reader.query_dicts(
        f"SELECT uniqExact(TraceId) AS traces FROM {ERROR_ORIGINS} FINAL WHERE {theirs}"
    )
    traces = int(total["traces"])
    return traces, [
        OriginShare(
            service=str(r["service"]),
            operation=str(r["operation"]),
            traces=int(r["traces"]),
            share=int(r["traces"]) / traces,
            origin_spans=int(r["origin_spans"]),
            reached_root=int(r["reached_root"]),
            propagated_to=tuple(str(s) for s in r["propagated_to"]),
            status_message=str(r["message"]),
            example_trace_id=str(r["example"]),
        )
        for r in rows
    ]


def headline(service: str, error_traces: int, origins: Sequence[OriginShare]) -> str:
    """The answer's first line: where most of `service`'s error traces originate."""
    top = origins[0]
    return (
        f"{top.share * 100:.0f}% of {service}'s error traces ({top.traces} of "
        f"{error_traces}) originate in {top.service}/{top.operation}"
    )


def origin_rows(origins: Sequence[OriginShare]) -> list[dict[str, str]]:
    """The table `tracepipe query errors` prints: one row per origin service/operation."""
    return [
        {
            "origin": f"{o.service}/{o.operation}",
            "traces": str(o.traces),
            "share%": f"{o.share * 100:.0f}",
            "origin spans": str(o.origin_spans),
            "reached root": str(o.reached_root),
            "propagated to": ", ".join(o.propagated_to) or "-",
            "message": o.status_message,
            "example trace": o.example_trace_id,
        }
        for o in origins
    ]


@dataclass(frozen=True)
class WindowedOrigin:
    """One origin service/operation of the errors seen at an operation, summed over windows."""

    service: str
    operation: str
    traces: int
    """Error traces of the operation with an origin here, counted once per window."""
    share: float
    """`traces` over the operation's error traces in the same windows, 0..1."""
    propagated_to: tuple[str, ...]
    """Every service where errors from here were seen in those windows, sorted (the origin
    span's own operation aside)."""


def windowed_origins(
    reader: Reader, service: str, operation: str, since_ns: int, until_ns: int
) -> tuple[int, list[WindowedOrigin]]:
    """The error traces of `service`/`operation` in the final origin windows starting in
    [since, until), and where their errors originated, most traces first ((0, []) when no such
    window is stored)."""
    windows = f"{ERROR_ORIGIN_WINDOWS} FINAL WHERE {time_range('WindowStart', since_ns, until_ns)}"
    seen_at = f"ServiceName = {quote(service)} AND SpanName = {quote(operation)}"
    rows = reader.query_dicts(
        "SELECT OriginService AS service, OriginOperation AS operation, sum(Traces) AS traces "
        f"FROM {windows} AND {seen_at} GROUP BY service, operation "
        "ORDER BY service = '' DESC, traces DESC, service, operation"
    )
    if not rows or rows[0]["service"] != "":
        return 0, []
    total = int(rows[0]["traces"])
    origins = rows[1:]
    if not origins or not total:
        return total, []
    keys = ", ".join(f"({quote(str(r['service']))}, {quote(str(r['operation']))})" for r in origins)
    reached = {
        (str(r["service"]), str(r["operation"])): tuple(str(s) for s in r["services"])
        for r in reader.query_dicts(
            "SELECT OriginService AS service, OriginOperation AS operation, "
            "arraySort(groupUniqArray(ServiceName)) AS services "
            f"FROM {windows} AND (OriginService, OriginOperation) IN ({keys}) "
            "AND (ServiceName, SpanName) != (OriginService, OriginOperation) "
            "GROUP BY service, operation"
        )
    }
    return total, [
        WindowedOrigin(
            service=str(r["service"]),
            operation=str(r["operation"]),
            traces=int(r["traces"]),
            share=int(r["traces"]) / total,
            propagated_to=reached.get((str(r["service"]), str(r["operation"])), ()),
        )
        for r in origins
    ]


@dataclass(frozen=True)
class OperationErrors:
    """One operation of a service where errors were seen, over the error-origin windows."""

    operation: str
    error_traces: int
    """Its error traces, counted once per window."""
    top_origin: str
    """service/operation where most of them originated."""
    top_traces: int


def _top_origins(
    rows: Sequence[dict[str, Any]], key: str
) -> dict[str, tuple[int, int, str, str]]:
    """Per `key` value of rows summed by (key, origin, origin_op): its error traces (the row
    without origin), and the traces, service and operation of its top origin (0, "", "" when
    none is stored)."""
    totals: dict[str, int] = {}
    origins: dict[str, list[tuple[int, str, str]]] = {}
    for r in rows:
        name, traces = str(r[key]), int(r["traces"])
        if r["origin"]:
            origins.setdefault(name, []).append((traces, str(r["origin"]), str(r["origin_op"])))
        else:
            totals[name] = traces
    # Most traces first; ties in name order, for a stable answer.
    return {
        name: (total, *min(origins.get(name, [(0, "", "")]), key=lambda t: (-t[0], t[1], t[2])))
        for name, total in totals.items()
    }


def operation_origins(
    reader: Reader, service: str, since_ns: int, until_ns: int
) -> list[OperationErrors]:
    """Each operation of `service` with errors in the final origin windows starting in
    [since, until), and where most of them originated; most error traces first."""
    rows = reader.query_dicts(
        "SELECT SpanName AS operation, OriginService AS origin, OriginOperation AS origin_op, "
        f"sum(Traces) AS traces FROM {ERROR_ORIGIN_WINDOWS} FINAL "
        f"WHERE {time_range('WindowStart', since_ns, until_ns)} "
        f"AND ServiceName = {quote(service)} GROUP BY operation, origin, origin_op"
    )
    found = [
        OperationErrors(operation, total, f"{origin}/{origin_op}" if traces else "-", traces)
        for operation, (total, traces, origin, origin_op) in _top_origins(rows, "operation").items()
    ]
    return sorted(found, key=lambda o: (-o.error_traces, o.operation))


@dataclass(frozen=True)
class ServiceErrors:
    """A service with errors in the error-origin windows, and where most of them originated."""

    service: str
    error_traces: int
    """Its error traces, counted once per window and operation where errors were seen."""
    origin_service: str
    origin_operation: str
    origin_traces: int
    """Of those, the ones with an origin at origin_service/origin_operation (the top one)."""

    @property
    def share(self) -> float:
        """The top origin's share of the service's error traces, 0..1."""
        return self.origin_traces / self.error_traces if self.error_traces else 0.0


def service_origins(reader: Reader, since_ns: int, until_ns: int) -> dict[str, ServiceErrors]:
    """Every service with errors in the final origin windows starting in [since, until), by
    name, with its top origin: one query for all services (the web view's services page)."""
    # A service's operations add up: a trace seen erring at two of its operations counts twice
    # in both the service's total and its origin's traces, so a share stays within 0..1.
    rows = reader.query_dicts(
        "SELECT ServiceName AS service, OriginService AS origin, OriginOperation AS origin_op, "
        f"sum(Traces) AS traces FROM {ERROR_ORIGIN_WINDOWS} FINAL "
        f"WHERE {time_range('WindowStart', since_ns, until_ns)} "
        "GROUP BY service, origin, origin_op"
    )
    return {
        service: ServiceErrors(service, total, origin, origin_op, traces)
        for service, (total, traces, origin, origin_op) in _top_origins(rows, "service").items()
    }


def operation_rows(operations: Sequence[OperationErrors]) -> list[dict[str, str]]:
    """The per-operation table `tracepipe query errors` prints after the origins."""
    return [
        {
            "operation": o.operation,
            "error traces": str(o.error_traces),
            "top origin": o.top_origin,
            "share%": f"{o.top_traces / o.error_traces * 100:.0f}" if o.error_traces else "-",
        }
        for o in operations
    ]
