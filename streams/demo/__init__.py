"""`tracepipe demo`: the whole product on one machine, live.

Starts a local Kafka (if none answers), a worker on the embedded ClickHouse, and the web-shop
trace generator with an injected incident (payment 5x slower by default); a live view, redrawn in
place, shows spans/s, traces assembled, per-service p50/p99 and error rate from the final
latency windows, and alerts as they fire and resolve. When the load ends it waits until every
span sent is stored (or says exactly how many are still in flight and how to store them), checks
its promises (traces assembled, the incident alerted on with an attribution and an exemplar trace
of this run) and exits non-zero when one is broken. Ctrl-C stops it cleanly; it ends by saying
how to query what was stored.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from confluent_kafka import KafkaException
from rich.console import Console

from streams.alert.events import FIRING, RESOLVED
from streams.alert.subscribe import subscribe
from streams.broker.topics import TopicNames, admin_client, ensure_topics
from streams.config import Settings
from streams.demo.promises import DRAIN_STALL_S, DemoOutcome, drain, pick_exemplar, report
from streams.demo.view import (
    TRACES_EMITTED,
    LiveState,
    LiveView,
    demo_logging,
    gather_snapshot,
    worker_counter,
)
from streams.errors import TracepipeError
from streams.generate.generator import TraceGenerator
from streams.generate.incident import parse_incident
from streams.generate.pacing import RunStats, run_at_rate
from streams.generate.topology import default_topology
from streams.query import count_spans, quote, worker_running, worker_url
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


def _follow_alerts(live: LiveState, bootstrap: str, topic: str, stop: threading.Event) -> None:
    # A daemon thread: it ends with the process (the subscriber blocks while no alert comes).
    for event in subscribe(bootstrap, topic, poll_timeout_s=0.5):
        if stop.is_set():
            return
        if event.state in (FIRING, RESOLVED):
            with live.lock:
                live.alerts.append(event)


# --- the run ------------------------------------------------------------------------------------


def run_demo(
    settings: Settings,
    rate: float = 1000.0,
    duration_s: float = 120.0,
    incidents: Sequence[str] = (DEMO_INCIDENT,),
    seed: int = 1,
    timeout_s: float = 120.0,
    keep_running: bool = False,
    id_seed: int | None = None,
    drain_stall_s: float = DRAIN_STALL_S,
) -> int:
    """Run the demo; 0 when it kept its promises: spans stored, traces assembled, and every
    injected incident's service alerted on with an attribution and an exemplar of this run."""
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
    logs = Path(settings.worker.data_dir).parent
    worker = WorkerProcess(env, logs / "worker.log")
    topics = TopicNames.from_prefix(settings.kafka.topic_prefix)
    print(f"worker: starting (log {worker.log_path})")
    live = LiveState()
    stop = threading.Event()
    run_id = uuid.uuid4().hex[:12]
    generator = TraceGenerator(
        default_topology(), seed, parsed, resource_attributes={RUN_ATTRIBUTE: run_id},
        id_seed=id_seed,
    )  # fmt: skip
    spec = ", ".join(incidents)
    of_run = f"ResourceAttributes[{quote(RUN_ATTRIBUTE)}] = {quote(run_id)}"
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

        print(f"demo: other log lines go to {logs / 'demo.log'}")
        with demo_logging(logs / "demo.log"), LiveView(Console(highlight=False)) as view:

            def redraw() -> None:
                view.show(gather_snapshot(live, worker, reader, time.monotonic() - started, spec))

            with SpanProducer(settings.kafka.bootstrap, topics.spans) as producer:

                def generate() -> None:
                    # The final totals too: the last progress report is up to a second old.
                    on_progress(
                        run_at_rate(
                            generator,
                            producer.send_many,
                            rate,
                            duration_s,
                            on_progress=on_progress,
                            progress_interval_s=1.0,
                            should_stop=stop.is_set,
                        )
                    )

                produce = threading.Thread(target=generate, daemon=True)
                produce.start()
                try:
                    while produce.is_alive():
                        redraw()
                        produce.join(_VIEW_INTERVAL_S)
                except KeyboardInterrupt:
                    with live.lock:
                        live.phase = "stopping (Ctrl-C)"
                stop.set()
                produce.join()
                producer.flush()
                sent = producer.delivered

            def waiting(stored: int) -> None:
                with live.lock:
                    live.phase = (
                        f"draining: {stored:,} of {sent:,} spans sent are stored (Ctrl-C stops "
                        "waiting)"
                    )
                redraw()

            stored = drain(sent, lambda: count_spans(reader, of_run), drain_stall_s,
                           on_wait=waiting)  # fmt: skip
            with live.lock:
                live.phase = f"stored {stored:,} of {sent:,} spans sent"
            redraw()
        with live.lock:
            alerts = tuple(live.alerts)
        exemplar = pick_exemplar(alerts, [i.service for i in parsed])
        outcome = DemoOutcome(
            run_id=run_id,
            incident_services=tuple(dict.fromkeys(i.service for i in parsed)),
            spans_generated=generator.spans_generated,
            spans_sent=sent,
            spans_stored=stored,
            traces_assembled=worker_counter(worker.stats(), TRACES_EMITTED),
            alerts=alerts,
            exemplar_trace_id=exemplar,
            exemplar_in_run=bool(exemplar)
            and count_spans(reader, f"{of_run} AND TraceId = {quote(exemplar)}") > 0,
        )
        return report(outcome, worker.settings)
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
