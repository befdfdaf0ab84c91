"""`tracepipe demo`: the whole product on one machine, live.

Starts a local Kafka (if none answers), a worker on the embedded ClickHouse, and the web-shop
trace generator with an injected incident (payment 5x slower by default); redraws a terminal
view every two seconds: spans/s, traces assembled, per-service p50/p99 and error rate from the
final latency windows, and alerts as they fire and resolve. Ctrl-C stops it cleanly; it ends by
saying how to query what was stored.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from streams.alert.events import FIRING, RESOLVED, AlertEvent
from streams.alert.subscribe import subscribe
from streams.broker.topics import TopicNames, admin_client, ensure_topics
from streams.config import Settings
from streams.errors import TracepipeError
from streams.generate.generator import RunStats, TraceGenerator
from streams.generate.incident import Incident, parse_incident
from streams.generate.topology import default_topology
from streams.query import Reader, count_spans, quote, worker_running, worker_url
from streams.query.table import render_table
from streams.query.windows import arrival_lag, service_summary
from streams.sdk import SpanProducer
from streams.worker_process import WorkerProcess

RUN_ATTRIBUTE = "tracepipe.demo.run"


def _broker_answers(settings: Settings) -> bool:
    try:
        admin_client(settings.kafka, quiet=True).list_topics(timeout=3)
        return True
    except KafkaException:
        return False


def _ensure_broker(settings: Settings) -> Settings:
    if _broker_answers(settings):
        print(f"kafka: using {settings.kafka.bootstrap}")
        return settings
    from streams.broker.local import LocalKafka

    print(
        f"kafka: nothing answers at {settings.kafka.bootstrap}; starting a local broker "
        f"(Apache Kafka {settings.local_kafka.version} from Maven Central; the first run "
        "downloads it)"
    )
    bootstrap = LocalKafka(settings.local_kafka).up()
    print(f"kafka: running at {bootstrap} (stop it with `tracepipe kafka down`)")
    return settings.replace("kafka", bootstrap=bootstrap)


DEMO_INCIDENT = "payment:latency*5@45s-85s"
"""The incident the demo injects unless told otherwise."""

# Short windows and lateness so the demo shows final windows and alerts within a minute or two;
# a variable the user set wins.
DEMO_WORKER_ENV = {
    "TRACEPIPE_AGGREGATION_WINDOW_MS": "5000",
    "TRACEPIPE_AGGREGATION_ALLOWED_LATENESS_MS": "5000",
    "TRACEPIPE_AGGREGATION_PARTITION_IDLE_MS": "5000",
    "TRACEPIPE_AGGREGATION_EMIT_INTERVAL_MS": "500",
    "TRACEPIPE_ASSEMBLY_TRACE_IDLE_MS": "3000",
    "TRACEPIPE_ASSEMBLY_SWEEP_INTERVAL_MS": "500",
}
_VIEW_INTERVAL_S = 2.0
_RED_RANGE_NS = 30 * 1_000_000_000


@dataclass
class _Live:
    """What the view shows, filled by the generator and alert threads."""

    stats: RunStats | None = None
    alerts: list[AlertEvent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _red_table(reader: Reader, now_ns: int, worker_settings: Settings) -> str:
    """Per-service RED over the last 30 s of final windows, as a table."""
    summaries = service_summary(reader, now_ns - _RED_RANGE_NS, now_ns)
    if not summaries:
        return f"  (no final latency windows yet: {arrival_lag(worker_settings, 'latency')})"
    rows = [
        {
            "service": s.service,
            "calls/s": f"{s.throughput_per_s:,.0f}",
            "err%": f"{100 * s.error_rate:.1f}",
            "p50 ms": f"{s.p50_ns / 1e6:.1f}",
            "p99 ms": f"{s.p99_ns / 1e6:.1f}",
        }
        for s in summaries
    ]
    return render_table(rows)


def _counter(stats: dict[str, Any], name: str) -> int:
    return sum(int(v) for v in stats.get("counters", {}).get(name, {}).values())


def _view(
    live: _Live, worker: WorkerProcess, reader: Reader, elapsed_s: float, spec: str
) -> list[str]:
    lines = [f"tracepipe demo  {elapsed_s:5.0f} s   incident: {spec or 'none'}   Ctrl-C stops"]
    with live.lock:
        stats, alerts = live.stats, list(live.alerts)
    if stats is not None:
        lines.append(f"generator  {stats.progress_line()}")
    try:
        counters = worker.stats()
        lines.append(
            f"worker     {_counter(counters, 'tracepipe_spans_consumed_total'):,} spans consumed"
            f"   {_counter(counters, 'tracepipe_traces_emitted_total'):,} traces assembled"
            f"   {_counter(counters, 'tracepipe_latency_windows_emitted_total'):,} latency "
            f"windows   {_counter(counters, 'tracepipe_latency_late_total'):,} late spans"
        )
        lines.append("services   (last 30 s of final windows, SERVER/CONSUMER spans)")
        lines.append(_red_table(reader, time.time_ns(), worker.settings))
    except (OSError, TracepipeError) as err:
        lines.append(f"worker     not answering: {err}")
    lines.append(f"web view   {worker_url(worker.settings)}/ui/")
    lines.append("alerts" + ("" if alerts else "     none yet"))
    lines.extend(f"  {event.summary_line()}" for event in alerts[-8:])
    return lines


def _follow_alerts(live: _Live, bootstrap: str, topic: str, stop: threading.Event) -> None:
    # A daemon thread: it ends with the process (the subscriber blocks while no alert comes).
    for event in subscribe(bootstrap, topic, poll_timeout_s=0.5):
        if stop.is_set():
            return
        if event.state in (FIRING, RESOLVED):
            with live.lock:
                live.alerts.append(event)


def run_demo(
    settings: Settings,
    rate: float = 1000.0,
    duration_s: float = 120.0,
    incidents: Sequence[str] = (DEMO_INCIDENT,),
    seed: int = 1,
    timeout_s: float = 120.0,
    keep_running: bool = False,
) -> int:
    """Run the demo; 0 when every injected incident's service was alerted on (or, without an
    incident, when spans were stored)."""
    parsed = [parse_incident(spec) for spec in incidents]
    settings = _ensure_broker(settings)
    ensure_topics(settings.kafka)
    if worker_running(settings):
        raise TracepipeError(
            f"a worker already answers at {worker_url(settings)}; stop it or set "
            "TRACEPIPE_WORKER_WEB_PORT"
        )
    env = {"TRACEPIPE_KAFKA_BOOTSTRAP": settings.kafka.bootstrap}
    env.update({k: v for k, v in DEMO_WORKER_ENV.items() if k not in os.environ})
    worker = WorkerProcess(env, Path(settings.worker.data_dir).parent / "worker.log")
    topics = TopicNames.from_prefix(settings.kafka.topic_prefix)
    print(f"worker: starting (log {worker.log_path})")
    live = _Live()
    stop = threading.Event()
    run_id = uuid.uuid4().hex[:12]
    generator = TraceGenerator(
        default_topology(), seed, parsed, resource_attributes={RUN_ATTRIBUTE: run_id}
    )
    spec = ", ".join(incidents)
    tty = sys.stdout.isatty()
    started = time.monotonic()
    try:
        worker.start(timeout_s)
        reader = worker.reader()
        threading.Thread(
            target=_follow_alerts,
            args=(live, settings.kafka.bootstrap, topics.alerts, stop),
            daemon=True,
        ).start()

        def on_progress(stats: RunStats) -> None:
            with live.lock:
                live.stats = stats

        with SpanProducer(settings.kafka.bootstrap, topics.spans) as producer:
            produce = threading.Thread(
                target=generator.run,
                kwargs={
                    "sink": producer.send_many,
                    "spans_per_s": rate,
                    "duration_s": duration_s,
                    "on_progress": on_progress,
                    "progress_interval_s": 1.0,
                    "should_stop": stop.is_set,
                },
                daemon=True,
            )
            produce.start()
            try:
                while produce.is_alive():
                    lines = _view(live, worker, reader, time.monotonic() - started, spec)
                    if tty:
                        print("\x1b[H\x1b[J" + "\n".join(lines), flush=True)
                    else:
                        print("\n".join(lines) + "\n", flush=True)
                    produce.join(_VIEW_INTERVAL_S if tty else 5 * _VIEW_INTERVAL_S)
            except KeyboardInterrupt:
                print("\nstopping (Ctrl-C)")
            stop.set()
            produce.join()
        return _report(live, generator, reader, parsed, run_id)
    finally:
        stop.set()
        if keep_running and worker.process is not None:
            print(
                f"worker: still running (pid {worker.pid}), web view at "
                f"{worker_url(worker.settings)}/ui/; stop it with kill {worker.pid}"
            )
        elif worker.process is not None:
            worker.stop()
            print("worker: stopped")


def _report(
    live: _Live,
    generator: TraceGenerator,
    reader: Reader,
    incidents: Sequence[Incident],
    run_id: str,
) -> int:
    """The closing summary: what was produced and stored, the alerts, how to query."""
    where = f"ResourceAttributes[{quote(RUN_ATTRIBUTE)}] = {quote(run_id)}"
    stored = count_spans(reader, where)
    print(
        f"produced: {generator.spans_generated:,} spans in {generator.traces_generated:,} "
        f"traces; stored so far: {stored:,} spans in otel_traces (run {run_id})"
    )
    with live.lock:
        alerts = list(live.alerts)
    fired = {e.service for e in alerts if e.state == FIRING}
    for event in alerts:
        print(f"  {event.summary_line()}")
    cli = Path(sys.executable).parent / "tracepipe"
    slowest = next((e.slowest_trace_id for e in alerts if e.slowest_trace_id), "")
    print("query it:")
    print(f"  {cli} query latency --service payment --since 10m")
    print(f"  {cli} query deps --since 10m")
    print(f"  {cli} alerts list --since 1h")
    if slowest:
        print(f"  {cli} trace {slowest}")
    missed = sorted({i.service for i in incidents} - fired)
    if missed:
        print(f"no alert fired for the incident on {', '.join(missed)} (yet)")
        return 1
    return 0 if stored else 1
