"""Error origins on the real broker and a real worker (chDB): the trace records on
tracepipe.traces carry them, the sweep stores them (tracepipe_traces.ErrorOrigins and
tracepipe_error_origins), a late span that shows where an error really began re-emits the trace
with the deeper origin, and `tracepipe query errors` reads the latest version through the
worker's API."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from streams.assemble.record import TRACE_SCHEMA
from streams.broker.topics import TopicNames
from streams.cli import main
from streams.model.codec import AvroCodec
from streams.model.span import Span, make_span
from streams.query.errors import error_origin_summary
from streams.sdk import SpanProducer
from tests.integration.isolated import read_topic, running_worker

pytestmark = pytest.mark.integration
MS = 1_000_000
S = 1_000_000_000
FAILED = "1" * 32
HANDLED = "2" * 32


def span(trace_id: str, n: int, parent: int, service: str, name: str, start_ns: int,
         end_ns: int, **fields: str) -> Span:  # fmt: skip
    return make_span(
        trace_id, f"{n:016x}", name, service, start_ns, end_ns,
        parent_span_id=f"{parent:016x}" if parent else "", **fields,
    )  # fmt: skip


def test_error_origins_are_published_stored_and_follow_late_spans(
    kafka_bootstrap: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    t0 = time.time_ns() - 60 * S
    failed = [
        span(FAILED, 1, 0, "checkout", "POST /checkout", t0, t0 + 100 * MS, kind="SERVER",
             status_code="ERROR"),
        span(FAILED, 2, 1, "checkout", "reserve", t0 + 5 * MS, t0 + 80 * MS, kind="CLIENT",
             status_code="ERROR", status_message="502"),
    ]  # fmt: skip
    # Inventory's server span reports late: the error turns out to begin there.
    late = span(FAILED, 3, 2, "inventory", "Reserve", t0 + 6 * MS, t0 + 79 * MS, kind="SERVER",
                status_code="ERROR", status_message="out of stock")  # fmt: skip
    handled = [
        span(HANDLED, 1, 0, "checkout", "GET /cart", t0, t0 + 50 * MS, kind="SERVER"),
        span(HANDLED, 2, 1, "checkout", "recommend", t0 + 5 * MS, t0 + 40 * MS, kind="CLIENT"),
        span(HANDLED, 3, 2, "recs", "List", t0 + 6 * MS, t0 + 39 * MS, kind="SERVER",
             status_code="ERROR", status_message="model unavailable"),
    ]  # fmt: skip
    with running_worker(
        kafka_bootstrap,
        tmp_path,
        TRACEPIPE_ASSEMBLY_TRACE_IDLE_MS="1000",
        TRACEPIPE_ASSEMBLY_SWEEP_INTERVAL_MS="200",
    ) as worker:
        topics = TopicNames.from_prefix(worker.settings.kafka.topic_prefix)
        reader = worker.reader()

        def stored(trace_id: str, version: int) -> bool:
            rows = reader.query_dicts(
                f"SELECT max(Version) AS v FROM tracepipe_traces WHERE TraceId = '{trace_id}'"
            )
            return bool(rows) and int(rows[0]["v"]) >= version

        with SpanProducer(worker.settings.kafka.bootstrap, topics.spans) as producer:
            producer.send_many(failed + handled)
            worker.wait_for(lambda: stored(FAILED, 1) and stored(HANDLED, 1), 90, "version 1")
            first = reader.query_dicts(
                "SELECT ServiceName, SpanName, PropagatedTo, ReachedRoot, StatusMessage "
                "FROM tracepipe_error_origins FINAL WHERE TraceId = '" + FAILED + "'"
            )
            producer.send_many([late])
            worker.wait_for(lambda: stored(FAILED, 2), 90, "version 2 after the late span")
        records = read_topic(
            worker.settings.kafka.bootstrap,
            topics.traces,
            AvroCodec(TRACE_SCHEMA),
            lambda seen: len(seen) >= 3,
            timeout_s=60,
        )
        traces = {
            r["TraceId"]: r["ErrorOrigins"]
            for r in reader.query_dicts("SELECT TraceId, ErrorOrigins FROM tracepipe_traces FINAL")
        }
        now = time.time_ns()
        total, shares = error_origin_summary(reader, "checkout", now - 3600 * S, now)
        monkeypatch.setenv("TRACEPIPE_WORKER_WEB_PORT", str(worker.settings.worker.web_port))
        assert main(["query", "errors", "--service", "checkout", "--since", "1h"]) == 0
        out = capsys.readouterr().out

    assert first == [
        {"ServiceName": "checkout", "SpanName": "reserve", "PropagatedTo": ["checkout"],
         "ReachedRoot": True, "StatusMessage": "502"},
    ]  # fmt: skip
    origins = {
        (r["trace_id"], r["version"]): [
            (o["service"], o["operation"], o["propagated_to"], o["reached_root"])
            for o in r["error_origins"]
        ]
        for r in records
    }
    assert origins == {
        (FAILED, 1): [("checkout", "reserve", ["checkout"], True)],
        (FAILED, 2): [("inventory", "Reserve", ["checkout"], True)],
        (HANDLED, 1): [("recs", "List", [], False)],
    }
    assert {t: [list(p) for p in o] for t, o in traces.items()} == {
        FAILED: [["inventory", "Reserve"]],
        HANDLED: [["recs", "List"]],
    }
    # Checkout's one error trace, by its latest version; recs' error never reached checkout.
    assert total == 1
    assert [(o.service, o.operation, o.traces, o.status_message) for o in shares] == [
        ("inventory", "Reserve", 1, "out of stock")
    ]
    assert out.startswith("100% of checkout's error traces (1 of 1) originate in inventory/Reserve")
