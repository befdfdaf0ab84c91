"""Canonical spans -> OTLP protobuf `ExportTraceServiceRequest` bytes, what a Collector's kafka
exporter writes with `encoding: otlp_proto`: the inverse of streams.ingest.otlp, for loading the
Collector's topic and tracepipe's `otlp` topic with the same spans."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan

from streams.model.span import SPAN_KINDS, STATUS_CODES, AttributeValue, Span

# Any: protobuf's stubs type enum fields as their own ValueType, which plain ints are at runtime.
_KIND: dict[str, Any] = {kind: number for number, kind in enumerate(SPAN_KINDS)}
_STATUS: dict[str, Any] = {code: number for number, code in enumerate(STATUS_CODES)}


def _set_value(target: AnyValue, value: AttributeValue | dict[str, Any]) -> None:
    # bool before int: a bool is an int to isinstance.
    if isinstance(value, str):
        target.string_value = value
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, bytes):
        target.bytes_value = value
    elif isinstance(value, list):
        target.array_value.SetInParent()  # an empty array is an array, not an empty value
        for item in value:
            _set_value(target.array_value.values.add(), item)
    elif isinstance(value, dict):  # a map (kvlist), as streams.ingest.otlp decodes one
        target.kvlist_value.SetInParent()
        set_attributes(target.kvlist_value.values, value)
    # None stays an empty AnyValue.


def set_attributes(target: Any, attributes: Mapping[str, AttributeValue | dict[str, Any]]) -> None:
    """Add `attributes` (maps as dicts) to a repeated KeyValue field."""
    for key, value in attributes.items():
        pair: KeyValue = target.add()
        pair.key = key
        _set_value(pair.value, value)


def _fill_span(pb: OtlpSpan, span: Span) -> None:
    pb.trace_id = bytes.fromhex(span["trace_id"])
    pb.span_id = bytes.fromhex(span["span_id"])
    if span["parent_span_id"]:
        pb.parent_span_id = bytes.fromhex(span["parent_span_id"])
    pb.trace_state = span["trace_state"]
    pb.name = span["name"]
    pb.kind = _KIND[span["kind"]]
    pb.start_time_unix_nano = span["start_time_unix_nano"]
    pb.end_time_unix_nano = span["end_time_unix_nano"]
    pb.status.code = _STATUS[span["status_code"]]
    pb.status.message = span["status_message"]
    set_attributes(pb.attributes, span["attributes"])
    for event in span["events"]:
        pb_event = pb.events.add()
        pb_event.time_unix_nano = event["time_unix_nano"]
        pb_event.name = event["name"]
        set_attributes(pb_event.attributes, event["attributes"])
    for link in span["links"]:
        pb_link = pb.links.add()
        pb_link.trace_id = bytes.fromhex(link["trace_id"])
        pb_link.span_id = bytes.fromhex(link["span_id"])
        pb_link.trace_state = link["trace_state"]
        set_attributes(pb_link.attributes, link["attributes"])


def otlp_request(spans: Sequence[Span]) -> bytes:
    """One serialized request: spans grouped by resource (their host's attributes) and scope."""
    request = ExportTraceServiceRequest()
    # Spans of one host share one resource dict (the generator's and most SDKs' way); a copy
    # with equal content only costs a second ResourceSpans, which is still valid OTLP.
    scopes: dict[tuple[int, str, str], Any] = {}
    resources: dict[int, Any] = {}
    for span in spans:
        resource_key = id(span["resource_attributes"])
        resource_spans = resources.get(resource_key)
        if resource_spans is None:
            resource_spans = resources[resource_key] = request.resource_spans.add()
            set_attributes(resource_spans.resource.attributes, span["resource_attributes"])
        scope_key = (resource_key, span["scope_name"], span["scope_version"])
        scope_spans = scopes.get(scope_key)
        if scope_spans is None:
            scope_spans = scopes[scope_key] = resource_spans.scope_spans.add()
            scope_spans.scope.name = span["scope_name"]
            scope_spans.scope.version = span["scope_version"]
        _fill_span(scope_spans.spans.add(), span)
    return bytes(request.SerializeToString())


def whole_traces(spans: Sequence[Span], max_spans: int) -> Iterator[Sequence[Span]]:
    """Runs of consecutive spans of at most `max_spans`, cut only between traces (a trace
    larger than `max_spans` is a run of its own)."""
    start = 0
    cut = 0  # the last trace boundary inside the current run
    for index in range(1, len(spans) + 1):
        if index == len(spans) or spans[index]["trace_id"] != spans[index - 1]["trace_id"]:
            if index - start > max_spans and cut > start:
                yield spans[start:cut]
                start = cut
            cut = index
    if start < len(spans):
        yield spans[start:]


def otlp_requests(spans: Sequence[Span], max_spans: int) -> list[bytes]:
    """`spans` (consecutive by trace) as requests of at most `max_spans` spans of whole traces."""
    return [otlp_request(run) for run in whole_traces(spans, max_spans)]
