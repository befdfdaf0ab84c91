"""ReadableSpan -> canonical Span, and the exporter's contract (never raises, FAILURE when full)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, TraceState
from opentelemetry.trace import SpanContext as OtelSpanContext

from streams.errors import TracepipeError
from streams.model.codec import AvroCodec
from streams.model.span import Span
from streams.sdk import ProducerQueueFullError, SpanProducer
from streams.sdk.otel import KafkaSpanExporter, span_from_otel

LINKED = OtelSpanContext(
    trace_id=0x1234,
    span_id=0x56,
    is_remote=True,
    trace_state=TraceState([("vendor", "v1"), ("other", "x")]),
)


@pytest.fixture
def finished() -> Iterator[dict[str, ReadableSpan]]:
    """A root SERVER span with a CLIENT child, recorded by a real TracerProvider."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": "checkout", "service.version": "2.1", "host.cpus": 2}
        )
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("my.library", "0.3.1")
    with tracer.start_as_current_span(
        "GET /cart",
        kind=SpanKind.SERVER,
        attributes={
            "http.response.status_code": 500,
            "retry": True,
            "ratio": 0.25,
            "route": "/cart",
            "tags": ["a", "b"],
            "codes": [1, 2],
            "flags": [True, False],
            "weights": [0.5],
        },
    ) as root:
        root.add_event("cache.miss", {"key": "cart:7", "size": 3}, timestamp=1_700_000_000_000)
        root.set_status(Status(StatusCode.ERROR, "backend down"))
        with tracer.start_as_current_span(
            "SELECT carts", kind=SpanKind.CLIENT, links=[Link(LINKED, {"link.kind": "batch"})]
        ) as child:
            child.set_status(Status(StatusCode.OK))
    provider.shutdown()
    yield {span.name: span for span in memory.get_finished_spans()}


def test_every_field_is_converted(finished: dict[str, ReadableSpan]) -> None:
    root_otel, child_otel = finished["GET /cart"], finished["SELECT carts"]
    root, child = span_from_otel(root_otel), span_from_otel(child_otel)
    assert root_otel.context is not None and child_otel.context is not None
    assert root["trace_id"] == f"{root_otel.context.trace_id:032x}"
    assert len(root["trace_id"]) == 32 and root["trace_id"] == root["trace_id"].lower()
    assert root["span_id"] == f"{root_otel.context.span_id:016x}" and len(root["span_id"]) == 16
    assert root["parent_span_id"] == ""
    assert child["trace_id"] == root["trace_id"]
    assert child["parent_span_id"] == root["span_id"]
    assert (root["kind"], child["kind"]) == ("SERVER", "CLIENT")
    assert root["name"] == "GET /cart"
    assert root["start_time_unix_nano"] == root_otel.start_time
    assert root["end_time_unix_nano"] == root_otel.end_time
    assert root["start_time_unix_nano"] <= child["start_time_unix_nano"]
    assert (root["status_code"], root["status_message"]) == ("ERROR", "backend down")
    assert (child["status_code"], child["status_message"]) == ("OK", "")
    assert root["service_name"] == "checkout"
    assert root["resource_attributes"]["service.version"] == "2.1"
    assert root["resource_attributes"]["host.cpus"] == 2
    assert root["resource_attributes"]["telemetry.sdk.language"] == "python"
    assert (root["scope_name"], root["scope_version"]) == ("my.library", "0.3.1")
    assert root["attributes"] == {
        "http.response.status_code": 500,
        "retry": True,
        "ratio": 0.25,
        "route": "/cart",
        "tags": ["a", "b"],
        "codes": [1, 2],
        "flags": [True, False],
        "weights": [0.5],
    }
    assert type(root["attributes"]["retry"]) is bool
    assert type(root["attributes"]["ratio"]) is float
    assert root["events"] == [
        {
            "time_unix_nano": 1_700_000_000_000,
            "name": "cache.miss",
            "attributes": {"key": "cart:7", "size": 3},
        }
    ]
    assert child["links"] == [
        {
            "trace_id": f"{0x1234:032x}",
            "span_id": f"{0x56:016x}",
            "trace_state": "vendor=v1,other=x",
            "attributes": {"link.kind": "batch"},
        }
    ]
    assert root["source_format"] == "otel-sdk"
    assert root["trace_state"] == ""


def test_converted_spans_encode_and_decode_unchanged(finished: dict[str, ReadableSpan]) -> None:
    codec = AvroCodec("span")
    for otel_span in finished.values():
        span = span_from_otel(otel_span)
        assert codec.decode(codec.encode(span), codec.fingerprint) == span


def test_missing_service_name_falls_back_to_unknown_service() -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"host.name": "h"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.get_tracer("t").start_span("x").end()
    (span,) = memory.get_finished_spans()
    assert span_from_otel(span)["service_name"] == "unknown_service"


class Recorder(SpanProducer):
    """A SpanProducer that keeps spans instead of sending them."""

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__("127.0.0.1:1", "t.spans", extra_config={"log_level": 0})
        self.spans: list[Span] = []
        self.fail_after = fail_after

    def send(self, span: Span) -> None:
        if self.fail_after is not None and len(self.spans) >= self.fail_after:
            raise ProducerQueueFullError("the local queue for t.spans stayed full")
        self.spans.append(span)


def test_export_sends_every_span(finished: dict[str, ReadableSpan]) -> None:
    recorder = Recorder()
    exporter = KafkaSpanExporter(producer=recorder)
    assert exporter.export(list(finished.values())) is SpanExportResult.SUCCESS
    assert {s["name"] for s in recorder.spans} == {"GET /cart", "SELECT carts"}
    assert exporter.force_flush(1000)
    exporter.shutdown()
    assert exporter.export(list(finished.values())) is SpanExportResult.FAILURE
    recorder.close(timeout_s=0)


def test_export_reports_failure_when_the_queue_is_full(
    finished: dict[str, ReadableSpan],
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder(fail_after=1)
    exporter = KafkaSpanExporter(producer=recorder)
    assert exporter.export(list(finished.values())) is SpanExportResult.FAILURE
    assert exporter.dropped == 1 and len(recorder.spans) == 1
    assert "stayed full" in caplog.text
    recorder.close(timeout_s=0)


def test_exporter_needs_a_bootstrap_or_a_producer() -> None:
    with pytest.raises(TracepipeError, match="bootstrap"):
        KafkaSpanExporter()
