"""The demo's live view: what the generator, the worker and the alerts say, gathered into
frames and drawn in place on a terminal (status lines elsewhere); the demo's own log file."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.table import Table
from rich.text import Text

from streams.alert.events import AlertEvent
from streams.errors import TracepipeError
from streams.generate.pacing import RunStats
from streams.query import Reader, worker_url
from streams.query.windows import arrival_lag, service_summary
from streams.worker_process import WorkerProcess

_STATUS_INTERVAL_S = 10.0
_RED_RANGE_NS = 30 * 1_000_000_000
TRACES_EMITTED = "tracepipe_traces_emitted_total"


@dataclass
class LiveState:
    """What the view shows, filled by the generator and alert threads."""

    stats: RunStats | None = None
    alerts: list[AlertEvent] = field(default_factory=list)
    phase: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


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
        parts.append(_line(f"  (no final latency windows yet: {snapshot.windows_hint})"))
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


def worker_counter(stats: dict[str, Any], name: str) -> int:
    """The sum of counter `name` over its labels in a worker's /api/stats."""
    return sum(int(v) for v in stats.get("counters", {}).get(name, {}).values())


def gather_snapshot(
    live: LiveState, worker: WorkerProcess, reader: Reader, elapsed_s: float, spec: str
) -> ViewSnapshot:
    """Gather one frame: the generator's progress, the worker's counters and RED, the alerts."""
    with live.lock:
        stats, alerts, phase = live.stats, list(live.alerts), live.phase
    services: tuple[dict[str, str], ...] = ()
    traces = 0
    try:
        counters = worker.stats()
        traces = worker_counter(counters, TRACES_EMITTED)
        worker_line = (
            f"{worker_counter(counters, 'tracepipe_spans_consumed_total'):,} spans consumed"
            f"   {traces:,} traces assembled"
            f"   {worker_counter(counters, 'tracepipe_latency_windows_emitted_total'):,} latency "
            f"windows   {worker_counter(counters, 'tracepipe_latency_late_total'):,} late spans"
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
    from streams.query.timestamps import format_time

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
