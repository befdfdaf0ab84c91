"""KafkaSpanExporter: an OpenTelemetry SDK span exporter that publishes to tracepipe.

    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_span_processor(BatchSpanProcessor(KafkaSpanExporter("127.0.0.1:9092")))

Each ReadableSpan becomes one canonical Span (source_format "otel-sdk") sent through a
SpanProducer, keyed by trace id.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaException
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

from streams.errors import TracepipeError
from streams.model.span import AttributeValue, Span, SpanEvent, SpanLink
from streams.sdk.producer import ProducerQueueFullError, SpanProducer

log = logging.getLogger("tracepipe.sdk.otel")

SOURCE_FORMAT = "otel-sdk"
UNKNOWN_SERVICE = "unknown_service"
# An exporter runs on the BatchSpanProcessor's thread: wait briefly for room, then report
# FAILURE and let the processor drop the batch, rather than stall every later export.
EXPORT_QUEUE_FULL_WAIT_S = 0.5

# Indexed by the enums' values: hashing a Python Enum costs more than the rest of the lookup.
_KINDS = tuple(kind.name for kind in sorted(SpanKind, key=lambda k: k.value))
_STATUS = tuple(code.name for code in sorted(StatusCode, key=lambda c: c.value))
_RESOURCE_CACHE_MAX = 64


def otel_attributes(attributes: Mapping[str, Any] | None) -> dict[str, AttributeValue]:
    """OTel attributes with their types kept; sequences (tuples in the SDK) become lists."""
    if not attributes:
        return {}
    return {key: list(value) if type(value) is tuple else value
            for key, value in attributes.items()}


def _span_attributes(span: ReadableSpan) -> dict[str, AttributeValue]:
    # The public `attributes` is a read-only proxy over a locked BoundedAttributes; iterating it
    # costs several µs per span. Read the plain dict underneath when this SDK version has one
    # (the span has ended, so nothing mutates it), else take the public way.
    inner = getattr(getattr(span, "_attributes", None), "_dict", None)
    if type(inner) is not dict:
        return otel_attributes(span.attributes)
    if not inner:
        return {}
    return {key: list(value) if type(value) is tuple else value
            for key, value in inner.items()}


def _resource_fields(resource: Resource) -> tuple[str, dict[str, AttributeValue]]:
    attributes = otel_attributes(resource.attributes)
    service = attributes.get("service.name")
    return (service if isinstance(service, str) and service else UNKNOWN_SERVICE), attributes


class _ResourceCache:
    """Converted resources by identity: a provider shares one Resource across all its spans."""

    def __init__(self) -> None:
        # Keeping the Resource itself in the value pins its id() for as long as we use it.
        self._entries: dict[int, tuple[Resource, str, dict[str, AttributeValue]]] = {}

    def get(self, resource: Resource) -> tuple[str, dict[str, AttributeValue]]:
        entry = self._entries.get(id(resource))
        if entry is None or entry[0] is not resource:
            if len(self._entries) >= _RESOURCE_CACHE_MAX:
                self._entries.clear()
            service, attributes = _resource_fields(resource)
            entry = self._entries[id(resource)] = (resource, service, attributes)
        return entry[1], entry[2]


def span_from_otel(span: ReadableSpan, resource: tuple[str, dict[str, AttributeValue]]
                   | None = None) -> Span:
    """The canonical Span of a finished OpenTelemetry SDK span."""
    context = span.context
    if context is None:
        raise ValueError(f"span {span.name!r} has no span context")
    service_name, resource_attributes = resource or _resource_fields(span.resource)
    parent = span.parent
    status = span.status
    scope = span.instrumentation_scope
    start = span.start_time or 0
    events: list[SpanEvent] = [
        {"time_unix_nano": event.timestamp, "name": event.name,
         "attributes": otel_attributes(event.attributes)}
        for event in span.events
    ]
    links: list[SpanLink] = [
        {"trace_id": f"{link.context.trace_id:032x}", "span_id": f"{link.context.span_id:016x}",
         "trace_state": link.context.trace_state.to_header() if link.context.trace_state else "",
         "attributes": otel_attributes(link.attributes)}
        for link in span.links
    ]
    trace_state = context.trace_state
    return {
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_span_id": f"{parent.span_id:016x}" if parent is not None else "",
        "trace_state": trace_state.to_header() if trace_state else "",
        "name": span.name,
        "kind": _KINDS[span.kind.value],
        "start_time_unix_nano": start,
        "end_time_unix_nano": span.end_time or start,
        "status_code": _STATUS[status.status_code.value],
        "status_message": status.description or "",
        "service_name": service_name,
        "resource_attributes": resource_attributes,
        "scope_name": scope.name if scope is not None else "",
        "scope_version": (scope.version or "") if scope is not None else "",
        "attributes": _span_attributes(span),
        "events": events,
        "links": links,
        "source_format": SOURCE_FORMAT,
    }


class KafkaSpanExporter(SpanExporter):  # type: ignore[misc]
    """Exports OpenTelemetry SDK spans to tracepipe's spans topic; never raises from export."""

    def __init__(
        self,
        bootstrap: str | None = None,
        topic: str = "tracepipe.spans",
        *,
        producer: SpanProducer | None = None,
        producer_config: dict[str, Any] | None = None,
    ) -> None:
        if producer is None:
            if bootstrap is None:
                raise TracepipeError("KafkaSpanExporter needs `bootstrap` (host:port of Kafka) "
                                     "or an existing `producer`")
            producer = SpanProducer(bootstrap, topic, queue_full_wait_s=EXPORT_QUEUE_FULL_WAIT_S,
                                    extra_config=producer_config)
            self._owns_producer = True
        else:
            self._owns_producer = False
        self.producer = producer
        self._resources = _ResourceCache()
        self._shutdown = False
        self.dropped = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Queue every span for delivery; FAILURE when the queue stays full or after shutdown."""
        if self._shutdown:
            log.warning("export of %d spans after shutdown ignored", len(spans))
            return SpanExportResult.FAILURE
        send = self.producer.send
        resources = self._resources
        for index, otel_span in enumerate(spans):
            try:
                span = span_from_otel(otel_span, resources.get(otel_span.resource))
            except (ValueError, TypeError, AttributeError) as err:
                # One malformed span must not cost the rest of the batch.
                self.dropped += 1
                log.error("dropped a span that cannot be converted (%s): %s", otel_span.name, err)
                continue
            try:
                send(span)
            except ProducerQueueFullError as err:
                self.dropped += len(spans) - index
                log.error("dropped %d spans: %s", len(spans) - index, err)
                return SpanExportResult.FAILURE
            except (TracepipeError, KafkaException, BufferError) as err:
                self.dropped += 1
                log.error("dropped span %s: %s", span["span_id"], err)
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Wait until queued spans are delivered; False if some remain after the timeout."""
        return self.producer.flush(timeout_millis / 1000) == 0

    def shutdown(self) -> None:
        """Flush, and close the producer if this exporter created it."""
        if self._shutdown:
            return
        self._shutdown = True
        if self._owns_producer:
            self.producer.close()
        else:
            self.producer.flush()
