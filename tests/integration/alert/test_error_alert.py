"""An error-rate alert on the real broker and chDB says where its service's errors originated:
inventory's failures propagate through checkout to the frontend, and checkout's alert names
inventory/Reserve (from the error origins the assembler stored), not checkout itself."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest

from streams.broker.topics import TopicNames, ensure_topics
from streams.model.codec import AvroCodec
from streams.model.span import Span, make_span
from streams.sdk import SpanProducer
from tests.integration.isolated import isolated_worker, read_topic

pytestmark = pytest.mark.integration

MS = 1_000_000
RULES = """
rules:
  - name: checkout-errors
    type: threshold
    selector: {service: checkout, operation: "POST /checkout"}
    signal: error_rate
    condition: ">"
    threshold: "10%"
    for: 1
    min_count: 10
"""


def checkout_trace(rng: random.Random, end_ns: int) -> list[Span]:
    """frontend -> checkout -> inventory Reserve; a third of the reservations fail, and the
    failure propagates up to the frontend."""
    trace = f"{rng.getrandbits(128) | 1:032x}"
    ids = [f"{rng.getrandbits(64) | 1:016x}" for _ in range(3)]
    failed = rng.random() < 1 / 3
    status = "ERROR" if failed else "UNSET"
    start = end_ns - 30 * MS
    return [
        make_span(trace, ids[0], "GET /checkout", "frontend", start, end_ns, kind="SERVER",
                  status_code=status),
        make_span(trace, ids[1], "POST /checkout", "checkout", start + MS, end_ns - MS,
                  kind="SERVER", parent_span_id=ids[0], status_code=status),
        make_span(trace, ids[2], "Reserve", "inventory", start + 2 * MS, end_ns - 2 * MS,
                  kind="SERVER", parent_span_id=ids[1], status_code=status,
                  status_message="out of stock" if failed else ""),
    ]  # fmt: skip


def test_an_error_rate_alert_names_where_the_errors_originated(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    worker = isolated_worker(
        kafka_bootstrap,
        tmp_path,
        TRACEPIPE_ALERT_RULES_FILE=str(rules),
        TRACEPIPE_AGGREGATION_WINDOW_MS="2000",
        # Windows become final well after their traces are emitted and their origins stored.
        TRACEPIPE_AGGREGATION_ALLOWED_LATENESS_MS="5000",
        TRACEPIPE_AGGREGATION_PARTITION_IDLE_MS="2000",
        TRACEPIPE_AGGREGATION_EMIT_INTERVAL_MS="300",
        TRACEPIPE_ASSEMBLY_TRACE_IDLE_MS="1500",
        TRACEPIPE_ASSEMBLY_SWEEP_INTERVAL_MS="200",
    )
    ensure_topics(worker.settings.kafka)
    topics = TopicNames.from_prefix(worker.settings.kafka.topic_prefix)
    worker.start()
    try:
        rng = random.Random(5)
        with SpanProducer(kafka_bootstrap, topics.spans) as producer:
            for _ in range(60):  # 6 s at 100 traces/s
                producer.send_many(
                    [s for _ in range(10) for s in checkout_trace(rng, time.time_ns())]
                )
                time.sleep(0.1)

        def firing(records: list[dict[str, Any]]) -> bool:
            return any(r["state"] == "firing" for r in records)

        events = read_topic(kafka_bootstrap, topics.alerts, AvroCodec("alert"), firing, 90)
        fire = next(e for e in events if e["state"] == "firing")
        assert (fire["service"], fire["operation"], fire["signal"]) == (
            "checkout",
            "POST /checkout",
            "error_rate",
        )
        assert fire["error_origins"], fire
        top = fire["error_origins"][0]
        assert (top["service"], top["operation"]) == ("inventory", "Reserve"), fire
        assert top["share"] == 1.0 and top["traces"] >= 1
        assert top["propagated_to"] == ["checkout", "frontend"]
    finally:
        worker.stop()
