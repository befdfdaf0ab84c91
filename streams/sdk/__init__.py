"""The producing side: what services use to publish spans to tracepipe.

`SpanProducer` publishes canonical spans; `Tracer` builds them for code without OpenTelemetry;
`KafkaSpanExporter` (in streams.sdk.otel, imported on demand) plugs into the OpenTelemetry SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streams.model.span_encoder import SpanEncoder
from streams.sdk.builder import (
    RecordingSpan,
    SpanContext,
    Tracer,
    extract,
    format_traceparent,
    inject,
    new_span_id,
    new_trace_id,
    parse_traceparent,
)
from streams.sdk.producer import ProducerQueueFullError, SpanProducer

if TYPE_CHECKING:
    from streams.sdk.otel import KafkaSpanExporter, span_from_otel

__all__ = [
    "KafkaSpanExporter",
    "ProducerQueueFullError",
    "RecordingSpan",
    "SpanContext",
    "SpanEncoder",
    "SpanProducer",
    "Tracer",
    "extract",
    "format_traceparent",
    "inject",
    "new_span_id",
    "new_trace_id",
    "parse_traceparent",
    "span_from_otel",
]


def __getattr__(name: str) -> Any:
    # The OpenTelemetry SDK is imported only by code that asks for the exporter.
    if name in ("KafkaSpanExporter", "span_from_otel"):
        from streams.sdk import otel

        return getattr(otel, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
