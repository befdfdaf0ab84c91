"""`tracepipe produce`, `generate` and `demo`: send spans, recorded or synthetic, to Kafka."""

from __future__ import annotations

import argparse
import sys

from streams.cli.exit_status import EXIT_FOUND, EXIT_NOTHING, Subcommands
from streams.config import Settings

ID_SEED_HELP = (
    "trace and span ids from this seed, so that runs with the same --id-seed (and --seed) send "
    "the same ids; the pipeline takes repeated ids as late spans of the earlier run's traces "
    "(default: new ids every run)"
)


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
    from streams.generate.generator import TraceGenerator
    from streams.generate.incident import parse_duration_ns, parse_incident
    from streams.generate.otel_sink import otel_sink
    from streams.generate.pacing import RunStats, run_at_rate
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
            stats = run_at_rate(
                generator, otel_sink(exporter), args.rate, duration_s, on_progress=progress
            )
            dropped = exporter.dropped
        else:
            stats = run_at_rate(
                generator, producer.send_many, args.rate, duration_s, on_progress=progress
            )
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


def add_demo(sub: Subcommands) -> None:
    """`tracepipe demo`."""
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


def add_produce(sub: Subcommands) -> None:
    """`tracepipe produce FILE`."""
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


def add_generate(sub: Subcommands) -> None:
    """`tracepipe generate`."""
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
