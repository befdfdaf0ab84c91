"""An error-rate alert on the real broker and chDB says where its operation's errors originated:
inventory's failures propagate through checkout to the frontend, and checkout's alert names
inventory/Reserve, not checkout itself: from the error-origin windows once one of the incident's
is final, from the error origins the assembler stored per trace before."""

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
from streams.sink.windows import ERROR_ORIGIN_WINDOWS
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


RULES_FOR_2 = RULES.replace("for: 1", "for: 2")
WINDOW_MS = 4000


def cart_trace(rng: random.Random, end_ns: int) -> list[Span]:
    """frontend -> checkout GET /cart -> pricing GetPrice; half fail in pricing. Errors of
    another checkout operation: not POST /checkout's."""
    trace = f"{rng.getrandbits(128) | 1:032x}"
    ids = [f"{rng.getrandbits(64) | 1:016x}" for _ in range(3)]
    status = "ERROR" if rng.random() < 1 / 2 else "UNSET"
    start = end_ns - 20 * MS
    return [
        make_span(trace, ids[0], "GET /cart", "frontend", start, end_ns, kind="SERVER",
                  status_code=status),
        make_span(trace, ids[1], "GET /cart", "checkout", start + MS, end_ns - MS,
                  kind="SERVER", parent_span_id=ids[0], status_code=status),
        make_span(trace, ids[2], "GetPrice", "pricing", start + 2 * MS, end_ns - 2 * MS,
                  kind="SERVER", parent_span_id=ids[1], status_code=status),
    ]  # fmt: skip


def test_the_alert_carries_its_operations_shares_from_the_error_origin_windows(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES_FOR_2)
    worker = isolated_worker(
        kafka_bootstrap,
        tmp_path,
        TRACEPIPE_ALERT_RULES_FILE=str(rules),
        TRACEPIPE_AGGREGATION_WINDOW_MS=str(WINDOW_MS),
        TRACEPIPE_AGGREGATION_ALLOWED_LATENESS_MS="3000",
        TRACEPIPE_AGGREGATION_PARTITION_IDLE_MS="2000",
        TRACEPIPE_AGGREGATION_EMIT_INTERVAL_MS="300",
        TRACEPIPE_ASSEMBLY_TRACE_IDLE_MS="1000",
        TRACEPIPE_ASSEMBLY_SWEEP_INTERVAL_MS="200",
    )
    ensure_topics(worker.settings.kafka)
    topics = TopicNames.from_prefix(worker.settings.kafka.topic_prefix)
    worker.start()
    window_ns = WINDOW_MS * MS
    # Per error span's service, operation and window (of its end): failed traces, one error
    # span each (POST /checkout's all fail in inventory).
    failed: dict[tuple[str, str], dict[int, int]] = {}
    try:
        rng = random.Random(7)
        with SpanProducer(kafka_bootstrap, topics.spans) as producer:
            for _ in range(130):  # 13 s at 100 checkouts/s and 50 carts/s: three windows or more
                spans = [s for _ in range(10) for s in checkout_trace(rng, time.time_ns())]
                spans += [s for _ in range(5) for s in cart_trace(rng, time.time_ns())]
                producer.send_many(spans)
                for span in spans:
                    if span["status_code"] == "ERROR":
                        start = span["end_time_unix_nano"] // window_ns * window_ns
                        seen = failed.setdefault((span["service_name"], span["name"]), {})
                        seen[start] = seen.get(start, 0) + 1
                time.sleep(0.1)

        def firing(records: list[dict[str, Any]]) -> bool:
            return any(r["state"] == "firing" for r in records)

        events = read_topic(kafka_bootstrap, topics.alerts, AvroCodec("alert"), firing, 90)
        fire = next(e for e in events if e["state"] == "firing")
        assert (fire["operation"], fire["signal"]) == ("POST /checkout", "error_rate")
        # From the windows of POST /checkout alone: pricing's errors are checkout's too (in its
        # GET /cart), so the per-trace read by service would have named pricing/GetPrice.
        assert [(o["service"], o["operation"]) for o in fire["error_origins"]] == [
            ("inventory", "Reserve")
        ], fire
        top = fire["error_origins"][0]
        assert top["share"] == 1.0
        assert top["propagated_to"] == ["checkout", "frontend"]

        reader = worker.reader()

        def stored() -> dict[tuple[int, str, str, str, str], int]:
            rows = reader.query_dicts(
                "SELECT toUnixTimestamp64Nano(WindowStart) AS start, ServiceName AS service, "
                "SpanName AS operation, OriginService AS origin, OriginOperation AS origin_op, "
                f"Traces AS traces FROM {ERROR_ORIGIN_WINDOWS} FINAL"
            )
            return {
                (int(r["start"]), r["service"], r["operation"], r["origin"], r["origin_op"]):
                    int(r["traces"])
                for r in rows
            }  # fmt: skip

        def seen_at(
            rows: dict[tuple[int, str, str, str, str], int], *where: str
        ) -> dict[int, int]:
            """Traces per window of one (service, operation, origin service, origin op) row."""
            return {key[0]: traces for key, traces in rows.items() if key[1:] == where}

        # Every window final and stored, each failed trace counted once in its window.
        post_checkout = failed[("checkout", "POST /checkout")]
        worker.wait_for(
            lambda: seen_at(stored(), "checkout", "POST /checkout", "", "") == post_checkout,
            60,
            "the error-origin windows",
        )
        rows = stored()
        reserve = failed[("inventory", "Reserve")]
        assert seen_at(rows, "checkout", "POST /checkout", "inventory", "Reserve") == post_checkout
        assert seen_at(rows, "inventory", "Reserve", "inventory", "Reserve") == reserve
        assert seen_at(rows, "inventory", "Reserve", "", "") == reserve
        for where in ["GET /checkout", "GET /cart"]:
            caller = failed[("frontend", where)]
            assert seen_at(rows, "frontend", where, "", "") == caller
        assert seen_at(rows, "checkout", "GET /cart", "pricing", "GetPrice") == failed[
            ("checkout", "GET /cart")
        ]
        assert not seen_at(rows, "checkout", "POST /checkout", "pricing", "GetPrice")
        # The alert's traces are those of the incident's windows final when it fired: at least
        # its first window's.
        incident = [
            traces
            for start, traces in sorted(post_checkout.items())
            if fire["starts_at_unix_nano"] <= start < fire["window_end_unix_nano"]
        ]
        sums = {sum(incident[:n]) for n in range(1, len(incident) + 1)}
        assert top["traces"] in sums, (top, incident)
    finally:
        worker.stop()
