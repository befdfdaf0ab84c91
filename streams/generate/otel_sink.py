"""A pacing sink that hands generated spans to an OpenTelemetry SDK exporter as ReadableSpans."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streams.model.span import AttributeValue, Span

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger("tracepipe.generate")


def otel_sink(exporter: SpanExporter) -> Callable[[list[Span]], None]:
    """A `run_at_rate` sink that hands spans to an OpenTelemetry SDK exporter as ReadableSpans.

    The spans keep their ids and times (the SDK's tracer would make its own), so the exporter
    sees exactly what instrumented services would have exported. A batch the exporter refuses
    is logged; the exporter counts what it dropped.
    """
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExportResult
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

    kinds = {kind.name: kind for kind in SpanKind}
    flags = TraceFlags(TraceFlags.SAMPLED)
    unset = Status(StatusCode.UNSET)
    scopes: dict[tuple[str, str], Any] = {}
    # By identity: every span of a host shares one resource dict. The dict is kept in the value
    # so its id() cannot be reused while cached.
    resources: dict[int, tuple[dict[str, AttributeValue], Any]] = {}

    def context(trace_id: int, span_id: str) -> Any:
        return SpanContext(trace_id, int(span_id, 16), is_remote=False, trace_flags=flags)

    def convert(span: Span) -> Any:
        trace_id = int(span["trace_id"], 16)
        attributes = span["resource_attributes"]
        cached = resources.get(id(attributes))
        if cached is None or cached[0] is not attributes:
            cached = resources[id(attributes)] = (attributes, Resource(attributes))
        scope_key = (span["scope_name"], span["scope_version"])
        scope = scopes.get(scope_key)
        if scope is None:
            scope = scopes[scope_key] = InstrumentationScope(*scope_key)
        parent = span["parent_span_id"]
        status = (
            Status(StatusCode.ERROR, span["status_message"])
            if span["status_code"] == "ERROR"
            else unset
        )
        return ReadableSpan(
            name=span["name"],
            context=context(trace_id, span["span_id"]),
            parent=context(trace_id, parent) if parent else None,
            resource=cached[1],
            attributes=span["attributes"],
            events=[Event(e["name"], e["attributes"], e["time_unix_nano"]) for e in span["events"]],
            links=[
                Link(context(int(k["trace_id"], 16), k["span_id"]), k["attributes"])
                for k in span["links"]
            ],
            kind=kinds[span["kind"]],
            status=status,
            start_time=span["start_time_unix_nano"],
            end_time=span["end_time_unix_nano"],
            instrumentation_scope=scope,
        )

    def sink(spans: list[Span]) -> None:
        if exporter.export([convert(span) for span in spans]) is not SpanExportResult.SUCCESS:
            log.error("the exporter refused a batch of %d spans", len(spans))

    return sink
