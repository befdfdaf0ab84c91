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

import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaException
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.table import Table
from rich.text import Text

from streams.alert.events import FIRING, RESOLVED, AlertEvent
from streams.alert.subscribe import subscribe
from streams.broker.topics import TopicNames, admin_client, ensure_topics
from streams.config import Settings
from streams.errors import TracepipeError
from streams.generate.generator import TraceGenerator
from streams.generate.incident import parse_incident
from streams.generate.pacing import RunStats, run_at_rate
from streams.generate.topology import default_topology
from streams.query import Reader, count_spans, quote, worker_running, worker_url
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
DRAIN_STALL_S = 30.0
"""After the load, the demo waits for the worker to store every span sent while the stored count
keeps growing; it gives up after this long without one more span stored."""

_VIEW_INTERVAL_S = 2.0
_STATUS_INTERVAL_S = 10.0
_RED_RANGE_NS = 30 * 1_000_000_000
_TRACES_EMITTED = "tracepipe_traces_emitted_total"


@dataclass
class _Live:
    """What the view shows, filled by the generator and alert threads."""

    stats: RunStats | None = None
    alerts: list[AlertEvent] = field(default_factory=list)
    phase: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


# --- the live view ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ViewSnapshot:
    """One frame of the live view: what the generator, the worker and the alerts say now."""

    elapsed_s: float
    incidents: str
    generator: str = ""
    worker: str = ""
    services: tuple[dict[str, str], ...] = ()
    web_url: str = ""
    alerts: tuple[str, ...] = ()
    phase: str = ""
    spans_sent: int = 0
    traces_assembled: int = 0
    windows_hint: str = "windows appear after window + allowed lateness"
    """When final windows appear, with the worker's settings in force."""

    def status_line(self) -> str:
        """One line for a screen that cannot be redrawn (a pipe, a log file)."""
        line = (
            f"demo {self.elapsed_s:4.0f} s: {self.spans_sent:,} spans sent, "
            f"{self.traces_assembled:,} traces assembled, {len(self.alerts)} alert events"
        )
        return f"{line}; {self.phase}" if self.phase else line


def _line(text: str, style: str = "") -> Text:
    # Cut at the screen's edge rather than wrapped: a wrapped line would push the view down.
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


class _ServiceTable:
    """The RED rows as a table at its natural width, or the screen's if narrower: the numbers
    keep their width, the service names are shortened."""

    def __init__(self, rows: Sequence[dict[str, str]]) -> None:
        self.rows = rows

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        widths = {
            column: max(len(column), *(len(row[column]) for row in self.rows))
            for column in self.rows[0]
        }
        natural = sum(widths.values()) + 2 * len(widths)
        table = Table(
            box=None,
            padding=(0, 0, 0, 2),
            pad_edge=False,
            expand=True,
            width=min(natural, options.max_width),
        )
        for column, widest in widths.items():
            if column == "service":
                table.add_column(column, no_wrap=True, overflow="ellipsis", ratio=1)
            else:
                table.add_column(column, justify="right", no_wrap=True, min_width=widest)
        for row in self.rows:
            table.add_row(*row.values())
        yield table


def render_view(snapshot: ViewSnapshot) -> RenderableType:
    """The live view of `snapshot`, fitted to whatever width it is rendered at."""
    parts: list[RenderableType] = [
        _line(
            f"tracepipe demo  {snapshot.elapsed_s:5.0f} s   incident: "
            f"{snapshot.incidents or 'none'}   Ctrl-C stops",
            "bold",
        )
    ]
    if snapshot.generator:
        parts.append(_line(f"generator  {snapshot.generator}"))
    parts.append(_line(f"worker     {snapshot.worker}"))
    parts.append(_line("services   (last 30 s of final windows, SERVER/CONSUMER spans)"))
    if snapshot.services:
        parts.append(_ServiceTable(snapshot.services))
    else:
        parts.append(
            _line(f"  (no final latency windows yet: {snapshot.windows_hint})")
        )
    if snapshot.web_url:
        parts.append(_line(f"web view   {snapshot.web_url}"))
    parts.append(_line("alerts" + ("" if snapshot.alerts else "     none yet")))
    parts.extend(_line(f"  {alert}") for alert in snapshot.alerts[-8:])
    if snapshot.phase:
        parts.append(_line(snapshot.phase, "bold"))
    return Group(*parts)


class LiveView:
    """The demo's screen: redrawn in place on a terminal; anywhere else (a pipe, a log file),
    a status line every ten seconds and the whole view once, at the end."""

    def __init__(self, console: Console, now: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self._now = now
        self._live: Live | None = None
        self._last_status_s = -_STATUS_INTERVAL_S
        self._last: ViewSnapshot | None = None

    def __enter__(self) -> LiveView:
        if self.console.is_terminal:
            self._live = Live(
                console=self.console, auto_refresh=False, redirect_stdout=True,
                redirect_stderr=True, vertical_overflow="crop",
            )  # fmt: skip
            self._live.start()
        return self

    def show(self, snapshot: ViewSnapshot) -> None:
        """Draw `snapshot` over the previous frame (or, off a terminal, maybe a status line)."""
        self._last = snapshot
        if self._live is not None:
            self._live.update(render_view(snapshot), refresh=True)
        elif self._now() - self._last_status_s >= _STATUS_INTERVAL_S:
            self._last_status_s = self._now()
            self.console.print(snapshot.status_line(), soft_wrap=True)

    def __exit__(
        self,
        _exc_type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()  # the last frame stays on the screen
        elif self._last is not None:
            self.console.print(render_view(self._last))


@contextmanager
def demo_logging(path: Path) -> Iterator[None]:
    """Log records (librdkafka's lines included: tracepipe's Kafka clients hand them to Python
    logging) and Python warnings go to `path` instead of over the live view."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = [handler]
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        root.handlers = saved
        handler.close()


def _counter(stats: dict[str, Any], name: str) -> int:
    return sum(int(v) for v in stats.get("counters", {}).get(name, {}).values())


def _snapshot(
    live: _Live, worker: WorkerProcess, reader: Reader, elapsed_s: float, spec: str
) -> ViewSnapshot:
    """Gather one frame: the generator's progress, the worker's counters and RED, the alerts."""
    with live.lock:
        stats, alerts, phase = live.stats, list(live.alerts), live.phase
    services: tuple[dict[str, str], ...] = ()
    traces = 0
    try:
        counters = worker.stats()
        traces = _counter(counters, _TRACES_EMITTED)
        worker_line = (
            f"{_counter(counters, 'tracepipe_spans_consumed_total'):,} spans consumed"
            f"   {traces:,} traces assembled"
            f"   {_counter(counters, 'tracepipe_latency_windows_emitted_total'):,} latency "
            f"windows   {_counter(counters, 'tracepipe_latency_late_total'):,} late spans"
        )
        now_ns = time.time_ns()
        services = tuple(
            {
                "service": s.service,
                "calls/s": f"{s.throughput_per_s:,.0f}",
                "err%": f"{100 * s.error_rate:.1f}",
                "p50 ms": f"{s.p50_ns / 1e6:.1f}",
                "p99 ms": f"{s.p99_ns / 1e6:.1f}",
            }
            for s in service_summary(reader, now_ns - _RED_RANGE_NS, now_ns)
        )
    except (OSError, TracepipeError) as err:
        worker_line = f"not answering: {err}"
    return ViewSnapshot(
        elapsed_s=elapsed_s,
        incidents=spec,
        generator=stats.progress_line() if stats is not None else "",
        worker=worker_line,
        services=services,
        web_url=f"{worker_url(worker.settings)}/ui/",
        windows_hint=arrival_lag(worker.settings, "latency"),
        alerts=tuple(_alert_line(event) for event in alerts),
        phase=phase,
        spans_sent=stats.spans if stats is not None else 0,
        traces_assembled=traces,
    )


def _alert_line(event: AlertEvent) -> str:
    """An alert for the view, what matters first: state, where, how bad, the attribution, the
    exemplar (the closing summary prints the whole summary line)."""
    from streams.query.windows import format_time

    parts = [
        format_time(event.time_unix_nano)[11:19],
        f"{event.state.upper():8}",
        f"{event.service}/{event.operation}",
        event.comparison(),
    ]
    if event.top_attribution is not None:
        parts.append(event.top_attribution.describe())
    if event.slowest_trace_id:
        parts.append(f"trace {event.slowest_trace_id}")
    return "  ".join(parts)


def _follow_alerts(live: _Live, bootstrap: str, topic: str, stop: threading.Event) -> None:
    # A daemon thread: it ends with the process (the subscriber blocks while no alert comes).
    for event in subscribe(bootstrap, topic, poll_timeout_s=0.5):
        if stop.is_set():
            return
        if event.state in (FIRING, RESOLVED):
            with live.lock:
                live.alerts.append(event)


# --- draining and promises ----------------------------------------------------------------------


def drain(
    sent: int,
    count_stored: Callable[[], int],
    stall_s: float = DRAIN_STALL_S,
    *,
    now: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_wait: Callable[[int], None] | None = None,
) -> int:
    """Wait until `count_stored()` reaches `sent`, as long as it keeps growing: give up after
    `stall_s` without progress (or at Ctrl-C). Return the last count; `on_wait` gets each one."""
    stored = count_stored()
    progress_s = now()
    try:
        while stored < sent:
            if on_wait is not None:
                on_wait(stored)
            if now() - progress_s >= stall_s:
                break
            sleep(1.0)
            latest = count_stored()
            if latest > stored:
                progress_s = now()
            stored = latest
    except KeyboardInterrupt:
        pass
    return stored


@dataclass(frozen=True)
class DemoOutcome:
    """What one demo run did: the facts its promises are checked against."""

    run_id: str
    incident_services: tuple[str, ...]
    spans_generated: int
    spans_sent: int
    """Spans the broker acknowledged."""
    spans_stored: int
    traces_assembled: int
    alerts: tuple[AlertEvent, ...]
    exemplar_trace_id: str = ""
    exemplar_in_run: bool = False
    """Whether the exemplar trace's spans carry this run's id."""

    @property
    def in_flight(self) -> int:
        """Spans the broker has that are not stored yet."""
        return max(self.spans_sent - self.spans_stored, 0)


def pick_exemplar(alerts: Sequence[AlertEvent], incident_services: Sequence[str]) -> str:
    """The trace to show: the slowest exemplar of a firing alert, the incident's first."""
    firing = [e for e in alerts if e.state == FIRING and e.slowest_trace_id]
    firing.sort(key=lambda e: e.service not in incident_services)
    return firing[0].slowest_trace_id if firing else ""


def broken_promises(outcome: DemoOutcome) -> list[str]:
    """The demo's promises this run broke, one line each (none: every promise kept)."""
    broken = []
    if outcome.spans_stored == 0:
        broken.append("no span of this run was stored")
    if outcome.traces_assembled == 0:
        broken.append("no trace was assembled")
    firing = [e for e in outcome.alerts if e.state == FIRING]
    for service in outcome.incident_services:
        on_service = [e for e in firing if e.service == service]
        if not on_service:
            broken.append(f"no alert fired for the incident on {service}")
        elif not any(e.attribution for e in on_service):
            broken.append(
                f"the alert on {service} fired without an attribution (no critical paths of "
                "assembled traces for its window)"
            )
    if outcome.incident_services and not outcome.exemplar_trace_id:
        broken.append("no alert named an exemplar trace")
    elif outcome.exemplar_trace_id and not outcome.exemplar_in_run:
        broken.append(
            f"the exemplar trace {outcome.exemplar_trace_id} is not one of this run's traces"
        )
    return broken


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
    live = _Live()
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
                view.show(_snapshot(live, worker, reader, time.monotonic() - started, spec))

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
            traces_assembled=_counter(worker.stats(), _TRACES_EMITTED),
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


def report(outcome: DemoOutcome, settings: Settings) -> int:
    """Print the closing summary (what was produced and stored, the alerts, how to query, the
    promises broken); 1 when a promise was broken, else 0."""
    print(
        f"produced: {outcome.spans_generated:,} spans (run {outcome.run_id}); the broker "
        f"acknowledged {outcome.spans_sent:,}; stored: {outcome.spans_stored:,} in otel_traces; "
        f"traces assembled: {outcome.traces_assembled:,}"
    )
    unsent = outcome.spans_generated - outcome.spans_sent
    if unsent:
        print(f"  {unsent:,} spans never reached Kafka (see the demo log)")
    if outcome.in_flight:
        spans_topic = TopicNames.from_prefix(settings.kafka.topic_prefix).spans
        print(
            f"  {outcome.in_flight:,} spans are still in flight: in {spans_topic}, not yet "
            f"consumed by the worker's group {settings.worker.app_id}. `tracepipe worker` "
            "(same settings) stores them."
        )
    for event in outcome.alerts:
        print(f"  {event.summary_line()}")
    cli = Path(sys.executable).parent / "tracepipe"
    print("query it:")
    print(f"  {cli} query latency --service payment --since 10m")
    print(f"  {cli} query deps --since 10m")
    print(f"  {cli} alerts list --since 1h")
    if outcome.exemplar_trace_id:
        print(f"  {cli} trace {outcome.exemplar_trace_id}")
    broken = broken_promises(outcome)
    if not broken:
        print("demo: every promise kept (spans stored, traces assembled, incident alerted on "
              "with its attribution)")  # fmt: skip
        return 0
    for promise in broken:
        print(f"demo: FAILED: {promise}")
    return 1
