"""Alerts end to end on the real broker and chDB: one service's latency rises 5x mid-run and
recovers; exactly one firing and one resolved event for it (with real slow exemplar traces and
an attribution naming it), none for the healthy services, and no duplicate across a restart."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from streams.broker.topics import TopicNames, ensure_topics
from streams.model.codec import AvroCodec
from streams.model.span import Span, make_span
from streams.query import quote
from streams.sdk import SpanProducer
from streams.worker_process import WorkerProcess
from tests.integration.isolated import isolated_worker, read_topic

pytestmark = pytest.mark.integration

MS = 1_000_000
RULES = """
rules:
  - name: latency-anomaly
    type: anomaly
    selector: {service: "*", operation: "*"}
    signal: p99
    factor: 3
    floor: 5ms
    baseline_windows: 10
    min_baseline_windows: 4
    for: 2
    resolve_for: 2
    min_count: 20
    severity: critical
    labels: {team: shop}
"""
HEALTHY_S = 24.0
INCIDENT_S = 14.0
RECOVERY_S = 30.0
TRACES_PER_S = 120


def shop_trace(rng: random.Random, end_ns: int, slow_payment: bool) -> list[Span]:
    """frontend -> checkout -> payment (and cart in parallel); payment is a small share of its
    callers' time, so only payment's own p99 moves past 3x when it slows down 5x."""
    trace = f"{rng.getrandbits(128) | 1:032x}"
    ids = [f"{rng.getrandbits(64) | 1:016x}" for _ in range(5)]
    payment = int(rng.lognormvariate(15.4, 0.3)) * (5 if slow_payment else 1)  # ~5 ms
    cart = int(rng.lognormvariate(15.0, 0.3))
    checkout = payment + int(rng.lognormvariate(16.8, 0.2))  # ~20 ms of its own
    frontend = checkout + int(rng.lognormvariate(17.7, 0.2))  # ~50 ms of its own
    start = end_ns - frontend
    return [
        make_span(trace, ids[0], "GET /checkout", "frontend", start, end_ns, kind="SERVER"),
        make_span(trace, ids[1], "POST /checkout", "checkout", start + MS, start + MS + checkout,
                  kind="SERVER", parent_span_id=ids[0]),
        make_span(trace, ids[2], "charge", "payment", start + 2 * MS, start + 2 * MS + payment,
                  kind="SERVER", parent_span_id=ids[1]),
        make_span(trace, ids[3], "GET /cart", "cart", start + MS, start + MS + cart,
                  kind="SERVER", parent_span_id=ids[0]),
    ]


class Traffic(threading.Thread):
    """Produces shop traces in real time: healthy, then payment 5x slower, then healthy."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic = bootstrap, topic
        self.stop_at = time.monotonic() + HEALTHY_S + INCIDENT_S + RECOVERY_S
        self.incident: tuple[int, int] = (0, 0)

    def run(self) -> None:
        rng = random.Random(3)
        began = time.monotonic()
        with SpanProducer(self.bootstrap, self.topic) as producer:
            while (now := time.monotonic()) < self.stop_at:
                elapsed = now - began
                slow = HEALTHY_S <= elapsed < HEALTHY_S + INCIDENT_S
                if slow and not self.incident[0]:
                    self.incident = (time.time_ns(), 0)
                if not slow and self.incident[0] and not self.incident[1]:
                    self.incident = (self.incident[0], time.time_ns())
                spans = [
                    s
                    for _ in range(TRACES_PER_S // 10)
                    for s in shop_trace(rng, time.time_ns(), slow)
                ]
                producer.send_many(spans)
                time.sleep(max(0.0, 0.1 - (time.monotonic() - now)))


def test_a_slowed_service_fires_once_resolves_once_and_survives_a_restart(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    settings = {
        "TRACEPIPE_ALERT_RULES_FILE": str(rules),
        "TRACEPIPE_AGGREGATION_WINDOW_MS": "2000",
        "TRACEPIPE_AGGREGATION_ALLOWED_LATENESS_MS": "3000",
        "TRACEPIPE_AGGREGATION_PARTITION_IDLE_MS": "2000",
        "TRACEPIPE_AGGREGATION_EMIT_INTERVAL_MS": "300",
        "TRACEPIPE_ASSEMBLY_TRACE_IDLE_MS": "1500",
        "TRACEPIPE_ASSEMBLY_SWEEP_INTERVAL_MS": "200",
    }
    worker = isolated_worker(kafka_bootstrap, tmp_path, **settings)
    ensure_topics(worker.settings.kafka)
    topics = TopicNames.from_prefix(worker.settings.kafka.topic_prefix)
    codec = AvroCodec("alert")
    worker.start()
    try:
        traffic = Traffic(kafka_bootstrap, topics.spans)
        traffic.start()

        def firing(records: list[dict[str, Any]]) -> bool:
            return any(r["state"] == "firing" for r in records)

        read_topic(kafka_bootstrap, topics.alerts, codec, firing, timeout_s=HEALTHY_S + 60)
        # Restart in the middle of the incident: the open alert must be neither re-fired nor
        # forgotten (it resolves once later).
        worker.stop()
        worker = WorkerProcess(worker.env, worker.log_path)
        worker.start()
        traffic.join()

        def resolved(records: list[dict[str, Any]]) -> bool:
            return any(r["state"] == "resolved" for r in records)

        events = read_topic(kafka_bootstrap, topics.alerts, codec, resolved, timeout_s=90)
        fired = [e for e in events if e["state"] == "firing"]
        done = [e for e in events if e["state"] == "resolved"]
        summary = [(e["state"], e["service"], e["operation"], e["sequence"]) for e in events]
        assert [(e["service"], e["operation"]) for e in fired] == [("payment", "charge")], summary
        assert [(e["service"], e["operation"]) for e in done] == [("payment", "charge")], summary
        (fire,), (resolve,) = fired, done
        assert fire["fingerprint"] == resolve["fingerprint"]
        assert fire["labels"] == {"team": "shop"} and fire["severity"] == "critical"
        assert fire["value"] > fire["threshold"] >= 5 * MS
        incident_start, incident_end = traffic.incident
        assert incident_start - 4_000 * MS <= fire["starts_at_unix_nano"] <= incident_end
        assert resolve["ends_at_unix_nano"] > incident_end - 2_000 * MS

        # The attribution names payment's own time on the critical path.
        assert fire["attribution"], fire
        top = fire["attribution"][0]
        assert (top["service"], top["operation"]) == ("payment", "charge"), fire["attribution"]
        assert top["share"] > 0.5

        # Exemplars are real traces in ClickHouse whose payment span was slow.
        assert fire["exemplar_trace_ids"]
        ids = ", ".join(quote(t) for t in fire["exemplar_trace_ids"])
        reader = worker.reader()
        worker.wait_for(
            lambda: len(
                reader.query_dicts(
                    "SELECT TraceId FROM otel_traces WHERE ServiceName = 'payment' "
                    f"AND TraceId IN ({ids}) AND Duration > {fire['threshold']}"
                )
            )
            == len(fire["exemplar_trace_ids"]),
            60,
            "exemplar traces stored",
        )
    finally:
        worker.stop()
