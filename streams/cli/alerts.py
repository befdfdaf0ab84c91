"""`tracepipe alerts tail|list`: follow alert events, or list the stored ones."""

from __future__ import annotations

import argparse
import sys
import time

from streams.cli.exit_status import EXIT_FOUND, EXIT_USAGE, Subcommands
from streams.cli.query import TIME_HELP, nothing_found, time_arg
from streams.config import Settings
from streams.query.table import render_table


def _alerts_tail(args: argparse.Namespace, settings: Settings) -> int:
    from streams.alert.subscribe import subscribe
    from streams.broker.topics import TopicNames

    topic = TopicNames.from_prefix(settings.kafka.topic_prefix).alerts
    start = "from the beginning" if args.from_beginning else "new events"
    print(
        f"following {topic} on {settings.kafka.bootstrap} ({start}); Ctrl-C stops", file=sys.stderr
    )
    events = subscribe(
        settings.kafka.bootstrap,
        topic,
        state=args.state,
        service=args.service,
        from_beginning=args.from_beginning,
    )
    try:
        for event in events:
            print(event.summary_line(), flush=True)
    except KeyboardInterrupt:
        pass
    return 0


def _alerts_list(args: argparse.Namespace, settings: Settings) -> int:
    from streams.alert.events import AlertEvent
    from streams.query import open_reader, quote, time_range
    from streams.query.timestamps import format_time, resolve_range
    from streams.query.windows import query_table
    from streams.sink.alerts import ALERTS, ALERTS_COLUMNS, alert_record

    try:
        since_ns, until_ns = resolve_range(args.since, args.until, time.time_ns(), "--")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    conditions = [time_range("EmittedAt", since_ns, until_ns)]
    what = "alert transitions"
    if args.state is not None:
        conditions.append(f"State = {quote(args.state)}")
        what = f"{args.state} {what}"
    if args.service is not None:
        conditions.append(f"ServiceName = {quote(args.service)}")
        what += f" of service {args.service!r}"
    between = f"between {format_time(since_ns)} and {format_time(until_ns)}"
    columns = ", ".join(ALERTS_COLUMNS)
    with open_reader(settings) as reader:
        rows = query_table(
            reader,
            ALERTS,
            f"SELECT {columns} FROM {ALERTS} FINAL WHERE {' AND '.join(conditions)} "
            "ORDER BY EmittedAt, Fingerprint, Sequence",
        )
        if not rows:
            return nothing_found(reader, args.service, f"no {what} {between}")
    table = []
    for row in rows:
        event = AlertEvent.from_record(alert_record(row))
        top = event.top_attribution
        table.append(
            {
                "time": format_time(event.time_unix_nano),
                "state": event.state.upper(),
                "severity": event.severity,
                "rule": event.rule,
                "service/operation": f"{event.service}/{event.operation}",
                "value": event.comparison(),
                "slowest trace": event.slowest_trace_id,
                "top attribution": top.describe() if top is not None else "",
                "error origin": event.top_error_origin,
            }
        )
    print(f"{len(table)} {what} {between}")
    print(render_table(table))
    return EXIT_FOUND


def _cmd_alerts(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "tail":
        return _alerts_tail(args, settings)
    return _alerts_list(args, settings)


def add_alerts(sub: Subcommands) -> None:
    """`tracepipe alerts tail|list`."""
    from streams.alert.events import STATES

    p = sub.add_parser(
        "alerts",
        help="follow alert events as they come, or list the stored ones",
        description="Alert events are the transitions of latency alerts (pending, firing, "
        "resolved, cancelled) that the worker's alert stage publishes on the alerts topic "
        "(tracepipe.alerts) and stores in tracepipe_alerts. Any Kafka consumer can read the "
        "topic; alert.webhook_urls forwards firing and resolved ones as Alertmanager webhooks.",
    )
    a = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    at = a.add_parser(
        "tail",
        help="print alert events as they arrive on the alerts topic",
        description="Print one line per alert event as it arrives on the alerts topic: time "
        "(UTC), STATE, severity, rule, service/operation, the signal's value against the "
        "threshold (ms for latency percentiles, % for error rates; with the baseline for "
        "anomaly rules), the slowest exemplar trace (open it with `tracepipe trace ID`) and the "
        "largest critical-path increase. Reads with a consumer group of its own, so it takes "
        "nothing from other subscribers. Ctrl-C stops it (exit 0).",
    )
    at.add_argument("--state", choices=STATES, help="only events of this state")
    at.add_argument("--service", help="only events of this service")
    at.add_argument(
        "--from-beginning",
        action="store_true",
        help="start with the oldest event the topic still holds (default: new events only)",
    )
    al = a.add_parser(
        "list",
        help="list the stored alert transitions of a time range",
        description="List the alert transitions stored in tracepipe_alerts (read with FINAL: "
        "an event delivered twice is listed once) that were published in [--since, --until), "
        "oldest first: time, state, severity, rule, service/operation, value against "
        "threshold, slowest trace and top attribution. Says so when there is none (exit 1).",
    )
    al.add_argument(
        "--since", default="24h", type=time_arg, help=f"from: {TIME_HELP} (default 24h)"
    )
    al.add_argument("--until", default="now", type=time_arg, help=f"to: {TIME_HELP} (default now)")
    al.add_argument("--state", choices=STATES, help="only transitions to this state")
    al.add_argument("--service", help="only alerts of this service")
    p.set_defaults(func=_cmd_alerts)
