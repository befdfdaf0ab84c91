"""The `tracepipe` command line: run the worker, the local broker, migrations, queries, the demo."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from streams import __version__
from streams.config import HOME_KEY, Settings, load_settings, settings_table
from streams.errors import InputError, TracepipeError
from streams.paths import data_home
from streams.query.table import markdown_table, readable_rows, render_table

if TYPE_CHECKING:
    from streams.query import Reader

EXIT_FOUND = 0
"""Done: what was asked for was found, or sent."""
EXIT_NOTHING = 1
"""Nothing found (no rows, windows, alerts, spans of the trace), or input that cannot be used."""
EXIT_USAGE = 2
"""The command could not run: bad arguments or settings, or Kafka/ClickHouse/the worker failed."""

EXIT_STATUS_EPILOG = (
    "exit status, the same for every command: 0 found (or sent); 1 nothing found (no rows, "
    "windows, alerts or spans of the trace), or input that cannot be used (a missing or empty "
    "file, rejected spans, not a trace id, an unknown service); 2 the command could not run "
    "(bad arguments or settings, Kafka or ClickHouse or the worker failed); 130 interrupted"
)

ID_SEED_HELP = (
    "trace and span ids from this seed, so that runs with the same --id-seed (and --seed) send "
    "the same ids; the pipeline takes repeated ids as late spans of the earlier run's traces "
    "(default: new ids every run)"
)


def _cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from streams.app import run_worker

    return run_worker(settings)


def _cmd_kafka(args: argparse.Namespace, settings: Settings) -> int:
    from streams.broker.local import run_kafka_command

    return run_kafka_command(args.action, settings)


def _cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    from streams.broker.topics import TopicNames, ensure_topics

    created = ensure_topics(settings.kafka)
    for name in TopicNames.from_prefix(settings.kafka.topic_prefix).all():
        state = "created" if name in created else "exists"
        print(f"{name}  {state}  partitions={settings.kafka.partitions}")
    return 0


def _cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from streams.warehouse.migrate import run_db_command

    return run_db_command(args.action, settings)


def _time_arg(text: str) -> str:
    """argparse check of a --since/--until value (resolved against the clock later)."""
    from streams.query.windows import parse_time

    try:
        parse_time(text, 0)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err
    return text


def _nothing_found(reader: Reader, service: str | None, what: str) -> int:
    """Say that nothing was found: that `service` is unknown (listing the known ones) if it is,
    else `what`; the exit status of nothing found."""
    from streams.query import unknown_service

    unknown = unknown_service(reader, service) if service is not None else None
    print(unknown or what)
    return EXIT_NOTHING


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
        format_time,
        latency_rows,
        latency_summary,
        resolve_range,
    )

    try:
        since_ns, until_ns = resolve_range(args.since, args.until, time.time_ns(), "--")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    between = f"between {format_time(since_ns)} and {format_time(until_ns)}"
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
            return _nothing_found(reader, service, f"no {what} {between}; {hint}")
    print(
        f"{what} {between}; {covered}; percentiles from merged sketches "
        f"(within {accuracy * 100:g}%)"
    )
    print(render_table(rows))
    return EXIT_FOUND


def _print_rows(rows: list[dict[str, Any]]) -> int:
    """Print query rows as a table, times in ISO 8601 and durations in ms; the exit status."""
    print(render_table(readable_rows(rows)))
    return EXIT_FOUND if rows else EXIT_NOTHING


def _cmd_query(args: argparse.Namespace, settings: Settings) -> int:
    from streams.query import count_spans, open_reader, parse_trace_id, quote, recent_spans

    if args.what in ("latency", "deps"):
        return _query_windows(args, settings)
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
            return _nothing_found(reader, args.service, f"no spans stored{which}")
        return _print_rows(rows)


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
    from streams.query.windows import format_time, query_table, resolve_range
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
            return _nothing_found(reader, args.service, f"no {what} {between}")
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
            }
        )
    print(f"{len(table)} {what} {between}")
    print(render_table(table))
    return EXIT_FOUND


def _cmd_alerts(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "tail":
        return _alerts_tail(args, settings)
    return _alerts_list(args, settings)


def _cmd_produce(args: argparse.Namespace, settings: Settings) -> int:
    from streams.ingest.produce import produce_payloads, read_input

    data = read_input(args.file)
    report = produce_payloads(data, settings, args.format, raw=args.raw, progress=sys.stderr)
    print(report.summary())
    for line in report.error_lines():
        print(f"tracepipe: rejected {line}", file=sys.stderr)
    if report.rejected:
        return EXIT_NOTHING
    if not args.raw and not report.spans_sent:
        source = "stdin" if args.file == "-" else args.file
        print(f"tracepipe: no spans in {source}", file=sys.stderr)
        return EXIT_NOTHING
    return EXIT_FOUND


def _cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    import json
    import random
    from dataclasses import asdict

    from streams.broker.topics import TopicNames, ensure_topics
    from streams.errors import ConfigError
    from streams.generate.generator import RunStats, TraceGenerator, otel_sink
    from streams.generate.incident import parse_duration_ns, parse_incident
    from streams.generate.topology import default_topology, load_topology_file
    from streams.sdk import SpanProducer

    if not args.rate > 0:
        raise ConfigError(f"invalid --rate {args.rate:g}; should be spans per second above 0")
    try:
        duration_s = parse_duration_ns(args.duration) / 1e9
    except ValueError as err:
        raise ConfigError(f"--duration: {err}") from err
    topology = load_topology_file(args.topology) if args.topology else default_topology()
    incidents = [parse_incident(spec) for spec in args.incident]
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    generator = TraceGenerator(topology, seed, incidents, args.clock_skew_ms, id_seed=args.id_seed)
    topic = TopicNames.from_prefix(settings.kafka.topic_prefix).spans
    ensure_topics(settings.kafka, [topic])

    def progress(stats: RunStats) -> None:
        print(f"generate: {stats.progress_line()}", file=sys.stderr, flush=True)

    until = f"for {duration_s:g} s" if duration_s else "until Ctrl-C"
    print(
        f"generate: {args.rate:g} spans/s {until} to {topic} at {settings.kafka.bootstrap} via "
        f"{args.via}; topology {topology.source}, seed {seed}"
        + "".join(f", incident {i.spec}" for i in incidents),
        file=sys.stderr,
        flush=True,
    )
    if args.spans_per_message < 1:
        raise ConfigError("--spans-per-message should be at least 1")
    with SpanProducer(
        settings.kafka.bootstrap, topic, batch_max_spans=args.spans_per_message
    ) as producer:
        if args.via == "otel":
            from streams.sdk.otel import KafkaSpanExporter

            exporter = KafkaSpanExporter(producer=producer)
            stats = generator.run(otel_sink(exporter), args.rate, duration_s, on_progress=progress)
            dropped = exporter.dropped
        else:
            stats = generator.run(producer.send_many, args.rate, duration_s, on_progress=progress)
            dropped = 0
        unsent = producer.flush() + producer.failed + dropped
    if args.json:
        # For scripts (the end-to-end benchmark): the totals, exact, in one line.
        totals = {**asdict(stats), "spans_per_s": stats.spans_per_s, "seed": seed}
        print(json.dumps({**totals, "undelivered": unsent}))
    else:
        print(f"{stats.summary()}; seed {seed}")
    if unsent:
        print(f"tracepipe: {unsent} spans were not delivered to {topic}", file=sys.stderr)
        return 1
    return 0


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


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from streams.demo import DEMO_INCIDENT, run_demo
    from streams.generate.incident import parse_duration_ns

    return run_demo(
        settings,
        rate=args.rate,
        duration_s=parse_duration_ns(args.duration) / 1e9,
        incidents=args.incident if args.incident is not None else (DEMO_INCIDENT,),
        seed=args.seed,
        id_seed=args.id_seed,
        timeout_s=args.timeout,
        keep_running=args.keep_running,
    )


def _cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    if args.markdown:
        rows = [
            {
                "key": f"`{key}`",
                "variable": f"`{env}`",
                "default": f"`{default}`",
                "what it sets": doc,
            }
            for key, env, default, doc in settings_table()
        ]
        print(markdown_table(rows))
        return 0
    for key, env, default, _doc in settings_table():
        if key == HOME_KEY:
            current: object = str(data_home())
        else:
            section, name = key.split(".", 1)
            current = getattr(getattr(settings, section), name)
        print(f"{key:36} {current!r:40} ({env}, default {default})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="tracepipe",
        description="tracepipe: spans from Kafka, assembled and aggregated by Faust, "
        "stored in ClickHouse. Settings come from TRACEPIPE_* variables and --config.",
        epilog=EXIT_STATUS_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"tracepipe {__version__}")
    parser.add_argument(
        "--config", metavar="FILE", help="a TOML or YAML settings file (also TRACEPIPE_CONFIG)"
    )
    parser.add_argument(
        "--log-level",
        default="info",
        help="level of tracepipe's own progress messages on stderr (default info)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "demo",
        help="the whole pipeline on this machine, live: load, an incident, its alert",
        description="Start local Kafka if none answers, run a worker on the embedded "
        "ClickHouse, and generate web-shop traces with an injected incident (by default "
        "payment 5x slower from 45 s to 85 s). A live view shows spans/s, traces assembled, "
        "per-service p50/p99 and error rate, and alerts as they fire and resolve; the incident "
        "fires an alert within about a minute of starting. When the load ends it waits until "
        "every span sent is stored, then checks its promises: exit status 0 when traces were "
        "assembled and every incident's service was alerted on with an attribution and an "
        "exemplar trace of this run, 1 (naming the broken promise) otherwise. Each run sends new "
        "trace ids (--id-seed repeats them). Ctrl-C stops it cleanly.",
    )
    p.add_argument("--rate", type=float, default=1000.0, help="spans per second (default 1000)")
    p.add_argument(
        "--duration", default="120s", help="how long to generate, e.g. 90s, 3m (default 120s)"
    )
    p.add_argument(
        "--incident",
        action="append",
        metavar="SPEC",
        help="an incident to inject instead of the default, e.g. 'payment:latency*5@45s-90s' "
        "or 'inventory:errors=20%%@1m-2m' (repeatable)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=1,
        help="generator seed: the same seed makes the same load, with new trace ids (default 1)",
    )
    p.add_argument("--id-seed", type=int, metavar="N", help=ID_SEED_HELP)
    p.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds to wait for the worker to start (default 120)",
    )
    p.add_argument(
        "--keep-running",
        action="store_true",
        help="leave the worker (and broker) running afterwards for queries",
    )
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "worker",
        help="run the stream-processing worker",
        description="Run the Faust worker: creates topics if missing, then "
        "consumes until SIGINT/SIGTERM. Its web server (worker.web_host:worker.web_port, "
        "default 127.0.0.1:6066) serves the trace web view at /ui/, plus /metrics and /api/.",
    )
    p.set_defaults(func=_cmd_worker)

    p = sub.add_parser(
        "kafka",
        help="run a local single-node Kafka (KRaft) from Maven Central",
        description="Resolve Apache Kafka with Maven, format KRaft storage and "
        "run one broker+controller on loopback (settings: local_kafka.*).",
    )
    p.add_argument("action", choices=["up", "down", "status"])
    p.set_defaults(func=_cmd_kafka)

    p = sub.add_parser(
        "produce",
        help="send spans from a file or stdin to Kafka",
        description="Send spans from FILE (or - for stdin): OTLP/JSON, OTLP "
        "protobuf, Zipkin v2 JSON, or tracepipe's JSON form, one document or JSON "
        "lines. Spans are validated here and sent to the spans topic; rejected "
        "ones are counted by reason, the first of each reason shown with where it is and why. "
        "Exit 1 if any was rejected, or the input holds no span.",
    )
    p.add_argument("file", help="the file to read, or - for stdin")
    p.add_argument(
        "--format",
        default="auto",
        choices=["auto", "otlp_json", "otlp_proto", "zipkin_json", "tracepipe_json"],
        help="the payload encoding (default: detected from the content)",
    )
    p.add_argument(
        "--raw",
        action="store_true",
        help="send payloads unchanged to the otlp/zipkin topic for the worker's bridge",
    )
    p.set_defaults(func=_cmd_produce)

    p = sub.add_parser(
        "generate",
        help="produce realistic synthetic traces at a steady rate (load, demos, incidents)",
        description="Generate traces of a microservice topology (default: a web shop, "
        "deploy/generate/webshop.yaml; format in streams/generate/topology.py) with lognormal "
        "latencies, errors, parallel calls, async messaging and optional clock skew, and send "
        "them to the spans topic at --rate spans/s. Incidents (repeatable --incident) make an "
        "operation slower or failing for a while, e.g. payment:latency*5@2m-4m, "
        "inventory:errors=20%@1m-3m, payment/Charge:latency*3@30s-90s. Progress goes to "
        "stderr, a summary to stdout. Exit 1 if some spans were not delivered.",
    )
    p.add_argument("--rate", type=float, default=1000.0, help="spans per second (default 1000)")
    p.add_argument(
        "--duration", default="0", help="how long: 60s, 5m, 1h30m; 0 = until Ctrl-C (default)"
    )
    p.add_argument(
        "--seed",
        type=int,
        help="random seed: the same seed makes the same load (traces of the same shapes, "
        "durations and errors), with new trace ids every run; default: random, printed",
    )
    p.add_argument("--id-seed", type=int, metavar="N", help=ID_SEED_HELP)
    p.add_argument("--topology", metavar="FILE", help="a topology YAML file (default: web shop)")
    p.add_argument(
        "--incident",
        action="append",
        default=[],
        metavar="SPEC",
        help="SERVICE[/OPERATION]:EFFECT[@START-END], EFFECT latency*F, latency+DURATION or "
        "errors=P%%; repeatable",
    )
    p.add_argument(
        "--clock-skew-ms",
        type=float,
        default=0.0,
        help="each host's clock is off by up to this many ms, fixed per host (default 0)",
    )
    p.add_argument(
        "--via",
        choices=["sdk", "otel"],
        default="sdk",
        help="sdk: tracepipe's SpanProducer; otel: OpenTelemetry ReadableSpans through "
        "KafkaSpanExporter (default sdk)",
    )
    p.add_argument(
        "--spans-per-message",
        type=int,
        default=500,
        metavar="N",
        help="spans per Kafka message at most (span batches, per partition); 1 sends one span "
        "per message, the format before span batches (default 500)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="end with the totals as one JSON object on stdout (spans, traces, error_spans, "
        "elapsed_s, spans_per_s, behind_s, seed, undelivered) instead of the summary line",
    )
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser(
        "trace",
        help="print one trace as a waterfall with its critical path",
        description="Print a stored trace: its assembled summary and its spans "
        "as an indented waterfall, critical path marked with *, errors with !.",
    )
    p.add_argument(
        "trace_id", help="32 hex characters, or 16 (a 64-bit id, as Jaeger and Zipkin show it)"
    )
    p.set_defaults(func=_cmd_trace)

    p = sub.add_parser(
        "topics",
        help="create the project's Kafka topics",
        description="Create every tracepipe topic that is missing, with "
        "kafka.partitions and kafka.replication_factor.",
    )
    p.add_argument("action", choices=["create"])
    p.set_defaults(func=_cmd_topics)

    p = sub.add_parser(
        "db",
        help="apply or show ClickHouse schema migrations",
        description="Apply schemas/clickhouse/*.sql in order, idempotently, to "
        "clickhouse.url; `status` lists what is applied.",
    )
    p.add_argument("action", choices=["migrate", "status"])
    p.set_defaults(func=_cmd_db)

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
    time_help = (
        "a duration ago (90s, 15m, 1h30m, 7d), now, or an ISO 8601 time (UTC unless it has "
        "an offset)"
    )
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
    ql.add_argument("--since", default="1h", type=_time_arg, help=f"from: {time_help} (default 1h)")
    ql.add_argument("--until", default="now", type=_time_arg, help=f"to: {time_help} (default now)")
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
    qd.add_argument("--since", default="1h", type=_time_arg, help=f"from: {time_help} (default 1h)")
    qd.add_argument("--until", default="now", type=_time_arg, help=f"to: {time_help} (default now)")
    p.set_defaults(func=_cmd_query)

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
        "--since", default="24h", type=_time_arg, help=f"from: {time_help} (default 24h)"
    )
    al.add_argument("--until", default="now", type=_time_arg, help=f"to: {time_help} (default now)")
    al.add_argument("--state", choices=STATES, help="only transitions to this state")
    al.add_argument("--service", help="only alerts of this service")
    p.set_defaults(func=_cmd_alerts)

    p = sub.add_parser(
        "config",
        help="print every setting, its value and its variable",
        description="Print the effective settings and the TRACEPIPE_* variable that sets each.",
    )
    p.add_argument(
        "--markdown", action="store_true", help="print the defaults as README's configuration table"
    )
    p.set_defaults(func=_cmd_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tracepipe` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Other libraries stay at WARNING; tracepipe's own progress (e.g. Maven resolution) shows.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tracepipe").setLevel(args.log_level.upper())
    try:
        settings = load_settings(args.config)
        code: int = args.func(args, settings)
        return code
    except InputError as err:
        print(f"tracepipe: error: {err}", file=sys.stderr)
        return EXIT_NOTHING
    except TracepipeError as err:
        print(f"tracepipe: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
