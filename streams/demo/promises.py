"""The end of a demo run: waiting until the spans sent are stored, the promises the run is
checked against, and the closing report."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from streams.alert.events import FIRING, AlertEvent
from streams.broker.topics import TopicNames
from streams.config import Settings

DRAIN_STALL_S = 30.0
"""After the load, the demo waits for the worker to store every span sent while the stored count
keeps growing; it gives up after this long without one more span stored."""


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
