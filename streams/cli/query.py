"""`tracepipe query` and `tracepipe trace`: read stored spans, windows and traces."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from streams.cli.exit_status import EXIT_FOUND, EXIT_NOTHING, EXIT_USAGE, Subcommands
from streams.config import Settings
from streams.query.table import readable_rows, render_table

if TYPE_CHECKING:
    from streams.query import Reader

TIME_HELP = (
    "a duration ago (90s, 15m, 1h30m, 7d), now, or an ISO 8601 time (UTC unless it has an offset)"
)
"""Help of every --since/--until."""


def time_arg(text: str) -> str:
    """argparse check of a --since/--until value (resolved against the clock later)."""
    from streams.query.timestamps import parse_time

    try:
        parse_time(text, 0)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err
    return text


def nothing_found(reader: Reader, service: str | None, what: str) -> int:
    """Say that nothing was found: that `service` is unknown (listing the known ones) if it is,
    else `what`; the exit status of nothing found."""
    from streams.query import unknown_service

    unknown = unknown_service(reader, service) if service is not None else None
    print(unknown or what)
    return EXIT_NOTHING


def asked_range(args: argparse.Namespace) -> tuple[int, int, str] | None:
    """--since/--until as [since, until) unix ns and the "between ... and ..." that says it;
    None, the problem said on stderr, when since is not before until."""
    from streams.query.timestamps import format_time, resolve_range

    try:
        since_ns, until_ns = resolve_range(args.since, args.until, time.time_ns(), "--")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return None
    return since_ns, until_ns, f"between {format_time(since_ns)} and {format_time(until_ns)}"


def _window_hint(settings: Settings, signal: str) -> str:
    """When `signal`'s windows appear, with the values in force (the running worker's)."""
    from streams.query import settings_in_force
    from streams.query.windows import arrival_lag

    in_force, source = settings_in_force(settings)
    return f"{arrival_lag(in_force, signal)}, from {source}"


def _query_windows(args: argparse.Namespace, settings: Settings) -> int:
    """`query latency` and `query deps`: summaries of the stored windows of a range."""
    from streams.query import open_reader
    from streams.query.windows import (
        dependency_rows,
        dependency_summary,
        latency_rows,
        latency_summary,
    )

    asked = asked_range(args)
    if asked is None:
        return EXIT_USAGE
    since_ns, until_ns, between = asked
    with open_reader(settings) as reader:
        if args.what == "latency":
            latency = latency_summary(reader, args.service, args.operation, since_ns, until_ns)
            rows = latency_rows(latency)
            accuracy = latency[0].relative_accuracy if latency else 0.0
            covered = latency[0].coverage.describe() if latency else ""
            what = f"latency windows for service {args.service!r}"
            if args.operation is not None:
                what += f" operation {args.operation!r}"
            signal, service = "latency", args.service
        else:
            edges = dependency_summary(reader, since_ns, until_ns)
            rows = dependency_rows(edges)
            accuracy = edges[0].relative_accuracy if edges else 0.0
            covered = edges[0].coverage.describe() if edges else ""
            what = "service-graph edges"
            signal, service = "edges", None
        if not rows:
            hint = _window_hint(settings, signal)
            return nothing_found(reader, service, f"no {what} {between}; {hint}")
    print(
        f"{what} {between}; {covered}; percentiles from merged sketches "
        f"(within {accuracy * 100:g}%)"
    )
    print(render_table(rows))
    return EXIT_FOUND


def _query_errors(args: argparse.Namespace, settings: Settings) -> int:
    """`query errors`: where one service's errors originated over a time range."""
    from streams.query import open_reader
    from streams.query.errors import (
        error_origin_summary,
        headline,
        operation_origins,
        operation_rows,
        origin_rows,
    )

    asked = asked_range(args)
    if asked is None:
        return EXIT_USAGE
    since_ns, until_ns, between = asked
    with open_reader(settings) as reader:
        error_traces, origins = error_origin_summary(reader, args.service, since_ns, until_ns)
        if not origins:
            return nothing_found(
                reader,
                args.service,
                f"no errors of service {args.service!r} in traces started {between}; error "
                "origins are stored as traces are assembled (assembly.trace_idle_ms after "
                "their last span)",
            )
        operations = operation_origins(reader, args.service, since_ns, until_ns)
    print(f"{headline(args.service, error_traces, origins)}; traces started {between}")
    print(render_table(origin_rows(origins)))
    if operations:
        print(f"\n{args.service}'s operations, from the error-origin windows {between}:")
        print(render_table(operation_rows(operations)))
    return EXIT_FOUND


def _print_rows(rows: list[dict[str, Any]]) -> int:
    """Print query rows as a table, times in ISO 8601 and durations in ms; the exit status."""
    print(render_table(readable_rows(rows)))
    return EXIT_FOUND if rows else EXIT_NOTHING


def _cmd_query(args: argparse.Namespace, settings: Settings) -> int:
    from streams.query import count_spans, open_reader, parse_trace_id, quote, recent_spans

    if args.what in ("latency", "deps"):
        return _query_windows(args, settings)
    if args.what == "errors":
        return _query_errors(args, settings)
    trace_id = parse_trace_id(args.trace_id) if getattr(args, "trace_id", None) else None
    with open_reader(settings) as reader:
        if args.what == "sql":
            return _print_rows(reader.query_dicts(args.sql))
        if args.what == "count":
            where = f"TraceId = {quote(trace_id)}" if trace_id else "1"
            count = count_spans(reader, where)
            print(count)
            return EXIT_FOUND if count else EXIT_NOTHING
        rows = recent_spans(reader, trace_id, args.service, args.limit)
        if not rows:
            which = f" of trace {trace_id}" if trace_id else ""
            return nothing_found(reader, args.service, f"no spans stored{which}")
        return _print_rows(rows)


def _cmd_trace(args: argparse.Namespace, settings: Settings) -> int:
    from streams.query import open_reader, parse_trace_id
    from streams.query.waterfall import trace_report

    trace_id = parse_trace_id(args.trace_id)
    with open_reader(settings) as reader:
        report = trace_report(reader, trace_id)
    if report is None:
        print(f"trace {trace_id}: no spans stored (sampled out, expired, or not yet written)")
        return EXIT_NOTHING
    print(report)
    return EXIT_FOUND


def add_trace(sub: Subcommands) -> None:
    """`tracepipe trace TRACE_ID`."""
    p = sub.add_parser(
        "trace",
        help="print one trace as a waterfall with its critical path",
        description="Print a stored trace: its assembled summary and its spans "
        "as an indented waterfall, critical path marked with *, errors with !, and where its "
        "errors began (error origins and the services each propagated to).",
    )
    p.add_argument(
        "trace_id", help="32 hex characters, or 16 (a 64-bit id, as Jaeger and Zipkin show it)"
    )
    p.set_defaults(func=_cmd_trace)


def add_query(sub: Subcommands) -> None:
    """`tracepipe query sql|count|spans|latency|deps|errors`."""
    p = sub.add_parser(
        "query",
        help="read stored spans, latency and the service graph (through a running worker if any)",
        description="Query ClickHouse. While a worker runs, the query goes "
        "through its HTTP API (it owns the embedded engine).",
    )
    q = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    qs = q.add_parser("sql", help="run one read-only SQL statement")
    qs.add_argument("sql")
    qc = q.add_parser("count", help="count stored spans")
    trace_id_help = "only this trace: 32 hex digits, or 16 (a 64-bit id)"
    qc.add_argument("--trace-id", help=trace_id_help)
    qp = q.add_parser("spans", help="list recent spans")
    qp.add_argument("--trace-id", help=trace_id_help)
    qp.add_argument("--service", help="only this service")
    qp.add_argument("--limit", type=int, default=20)
    ql = q.add_parser(
        "latency",
        help="calls, errors and percentiles of one service's operations over a time range",
        description="Sum the final latency windows (tracepipe_latency) of SERVICE that start "
        "in [--since, --until): per operation and span kind, calls, errors, error rate "
        "(status classes merged), calls per second over the range, p50/p90/p95/p99 and max in "
        "ms, and the slowest exemplar trace (open it with `tracepipe trace ID`). Percentiles "
        "come from the windows' DDSketches merged, within aggregation.relative_accuracy of the "
        "exact value; they are never averages of window percentiles. A window is stored once "
        "the watermark passes it: aggregation.window_ms + allowed_lateness_ms after its start "
        "at the earliest. Exit 1 when no window is in the range.",
    )
    ql.add_argument("--service", required=True, help="the service name (otel_traces ServiceName)")
    ql.add_argument("--operation", help="only this operation (span name)")
    ql.add_argument("--since", default="1h", type=time_arg, help=f"from: {TIME_HELP} (default 1h)")
    ql.add_argument("--until", default="now", type=time_arg, help=f"to: {TIME_HELP} (default now)")
    qd = q.add_parser(
        "deps",
        help="the service graph: calls between services over a time range",
        description="Sum the final service-graph edge windows (tracepipe_edges) that start in "
        "[--since, --until): per client -> server and connection type ('-' for "
        "request/response, else messaging_system, database or virtual_node), calls, error rate "
        "(either side ERROR), calls per second over the range, p50 and p99 in ms from the "
        "merged sketches. Edges come from assembled traces, so they appear "
        "assembly.trace_idle_ms later than latency windows. Exit 1 when no edge is in the range.",
    )
    qd.add_argument("--since", default="1h", type=time_arg, help=f"from: {TIME_HELP} (default 1h)")
    qd.add_argument("--until", default="now", type=time_arg, help=f"to: {TIME_HELP} (default now)")
    qe = q.add_parser(
        "errors",
        help="where one service's errors originated over a time range",
        description="Read the error origins of assembled traces (tracepipe_error_origins) that "
        "started in [--since, --until) and in which SERVICE erred: an error originated in it or "
        "propagated to it. An origin is an error span none of whose synchronous children "
        "errored; its error propagated up through its error ancestors. Per origin "
        "service/operation: the traces (and their share of SERVICE's error traces; a trace "
        "with two origins counts for both), origin spans, traces where the error reached the "
        "root span, the services it propagated to, the latest message and trace (open it with "
        "`tracepipe trace ID`). Then, from the error-origin windows (tracepipe_error_origin_"
        "windows) that started in the range, each of SERVICE's operations where errors were "
        "seen: its error traces and the origin of most of them. Exit 1 when there is none.",
    )
    qe.add_argument("--service", required=True, help="the service name (otel_traces ServiceName)")
    qe.add_argument("--since", default="1h", type=time_arg, help=f"from: {TIME_HELP} (default 1h)")
    qe.add_argument("--until", default="now", type=time_arg, help=f"to: {TIME_HELP} (default now)")
    p.set_defaults(func=_cmd_query)
