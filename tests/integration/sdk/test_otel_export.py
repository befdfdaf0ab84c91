"""OpenTelemetry SDK -> KafkaSpanExporter -> broker -> worker -> otel_traces, field by field."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from streams.broker.topics import TopicNames
from streams.query import count_spans, quote
from streams.sdk.otel import KafkaSpanExporter
from streams.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def spans_topic(worker: WorkerProcess) -> str:
    return TopicNames.from_prefix(worker.settings.kafka.topic_prefix).spans


def provider_for(service: str, worker: WorkerProcess) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "deployment.environment": "test"})
    )
    exporter = KafkaSpanExporter(worker.settings.kafka.bootstrap, spans_topic(worker))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def trace_rows(worker: WorkerProcess, trace_id: str, expected: int) -> dict[str, dict[str, Any]]:
    reader = worker.reader()
    where = f"TraceId = {quote(trace_id)}"
    worker.wait_for(
        lambda: count_spans(reader, where) >= expected, 120, f"{expected} spans of trace {trace_id}"
    )
    rows = reader.query_dicts(
        "SELECT SpanId, ParentSpanId, SpanName, SpanKind, ServiceName, ResourceAttributes, "
        "ScopeName, ScopeVersion, SpanAttributes, StatusCode, StatusMessage, Duration, "
        "Events.Name AS event_names, Events.Attributes AS event_attributes "
        f"FROM otel_traces WHERE {where}"
    )
    assert len(rows) == expected
    return {row["SpanName"]: row for row in rows}


def own_attributes(row: dict[str, Any]) -> dict[str, str]:
    """The span's attributes without those the pipeline adds (`tracepipe.*`)."""
    return {k: v for k, v in row["SpanAttributes"].items() if not k.startswith("tracepipe.")}


def test_a_nested_otel_trace_lands_in_otel_traces(worker: WorkerProcess) -> None:
    frontend, backend = provider_for("web", worker), provider_for("inventory", worker)
    web_tracer = frontend.get_tracer("test.web", "1.0")
    inv_tracer = backend.get_tracer("test.inventory", "2.0")
    propagator = TraceContextTextMapPropagator()
    with web_tracer.start_as_current_span(
        "GET /order",
        kind=SpanKind.SERVER,
        attributes={
            "http.response.status_code": 500,
            "cache.hit": False,
            "ratio": 0.75,
            "route": "/order",
            "items": ["a", "b"],
        },
    ) as root:
        root.add_event("order.validated", {"order.lines": 3})
        with web_tracer.start_as_current_span("call inventory", kind=SpanKind.CLIENT) as client:
            carrier: dict[str, str] = {}
            propagator.inject(carrier)
            # The "other service": a separate provider, its parent only known from the header.
            with inv_tracer.start_as_current_span(
                "reserve",
                context=propagator.extract(carrier),
                kind=SpanKind.SERVER,
                attributes={"stock.left": 0},
            ) as grandchild:
                grandchild.set_status(Status(StatusCode.ERROR, "out of stock"))
        root.set_status(Status(StatusCode.ERROR, "inventory failed"))
    root_ctx, client_ctx = root.get_span_context(), client.get_span_context()
    grand_ctx = grandchild.get_span_context()
    frontend.shutdown()
    backend.shutdown()

    rows = trace_rows(worker, f"{root_ctx.trace_id:032x}", 3)
    get, call, reserve = rows["GET /order"], rows["call inventory"], rows["reserve"]
    assert get["SpanId"] == f"{root_ctx.span_id:016x}" and get["ParentSpanId"] == ""
    assert call["SpanId"] == f"{client_ctx.span_id:016x}"
    assert call["ParentSpanId"] == get["SpanId"]
    assert reserve["SpanId"] == f"{grand_ctx.span_id:016x}"
    assert reserve["ParentSpanId"] == call["SpanId"]
    assert (get["ServiceName"], call["ServiceName"], reserve["ServiceName"]) == (
        "web",
        "web",
        "inventory",
    )
    assert (get["SpanKind"], call["SpanKind"], reserve["SpanKind"]) == (
        "Server",
        "Client",
        "Server",
    )
    assert own_attributes(get) == {
        "http.response.status_code": "500",
        "cache.hit": "false",
        "ratio": "0.75",
        "route": "/order",
        "items": '["a","b"]',
    }
    assert own_attributes(reserve) == {"stock.left": "0"}
    assert get["SpanAttributes"].get("tracepipe.source_format", "otel-sdk") == "otel-sdk"
    assert get["event_names"] == ["order.validated"]
    assert get["event_attributes"] == [{"order.lines": "3"}]
    assert (get["StatusCode"], get["StatusMessage"]) == ("Error", "inventory failed")
    assert (reserve["StatusCode"], reserve["StatusMessage"]) == ("Error", "out of stock")
    assert call["StatusCode"] == "Unset"
    assert (get["ScopeName"], get["ScopeVersion"]) == ("test.web", "1.0")
    assert (reserve["ScopeName"], reserve["ScopeVersion"]) == ("test.inventory", "2.0")
    assert reserve["ResourceAttributes"]["service.name"] == "inventory"
    assert reserve["ResourceAttributes"]["deployment.environment"] == "test"
    assert int(get["Duration"]) > 0


def test_the_two_services_example_end_to_end(worker: WorkerProcess) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
    }
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "two_services" / "run.py"),
            "--requests",
            "4",
            "--bootstrap",
            worker.settings.kafka.bootstrap,
            "--topic",
            spans_topic(worker),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    trace_ids = result.stdout.split()
    assert len(trace_ids) == 4 and len(set(trace_ids)) == 4

    for index, trace_id in enumerate(trace_ids):
        rows = trace_rows(worker, trace_id, 4)
        checkout, call = rows["GET /checkout"], rows["GET backend /price"]
        price, lookup = rows["GET /price"], rows["price.lookup"]
        assert checkout["ParentSpanId"] == ""
        assert call["ParentSpanId"] == checkout["SpanId"]
        # The hop: the backend's server span is a child of the frontend's client span.
        assert price["ParentSpanId"] == call["SpanId"]
        assert lookup["ParentSpanId"] == price["SpanId"]
        assert {checkout["ServiceName"], call["ServiceName"]} == {"frontend"}
        assert {price["ServiceName"], lookup["ServiceName"]} == {"backend"}
        assert call["SpanKind"] == "Client" and price["SpanKind"] == "Server"
        unknown_item = index % 4 == 3  # run.py asks for "durian" every fourth request
        assert checkout["StatusCode"] == ("Error" if unknown_item else "Unset")
        assert price["SpanAttributes"]["http.response.status_code"] == (
            "404" if unknown_item else "200"
        )
