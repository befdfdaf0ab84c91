"""OTLP `ExportTraceServiceRequest` (protobuf or OTLP/JSON) to canonical spans.

This is what an OpenTelemetry Collector's kafka exporter writes with `encoding: otlp_proto`
or `otlp_json`. Structural problems fail the whole payload with a DecodeError; the content of
each span (id format, times, limits) is checked afterwards by `streams.ingest.validate`.
Protobuf goes straight from the message objects to span columns (raw ids, enum numbers, each
resource's attributes converted once); OTLP/JSON, already Python objects, gives span dicts
(`streams.ingest.otlp_json`).

Map values (`kvlistValue`), and arrays holding arrays or maps, cannot be carried by the Avro
attribute union, so they become the string the Collector's ClickHouse exporter stores for them
(JSON text, `streams.model.attribute_text`): otel_traces gets the Collector's text either way.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from streams.errors import DecodeError
from streams.ingest.payload import PayloadSpans
from streams.model.attribute_text import attribute_text
from streams.model.column_builder import SpanColumnsBuilder
from streams.model.span import UNKNOWN_SERVICE, AttributeValue, Span

DEFAULT_SERVICE_NAME = UNKNOWN_SERVICE

# OTLP enum numbers -> canonical names (index = enum value).
KIND_NAMES = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUS_NAMES = ("UNSET", "OK", "ERROR")

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1


def kind_name(value: int, reason: str) -> str:
    """The canonical name of OTLP span kind `value`; DecodeError (`reason`) when it is none."""
    if 0 <= value < len(KIND_NAMES):
        return KIND_NAMES[value]
    raise DecodeError(reason, f"span kind {value} is not an OTLP SpanKind (0-5)")


def status_name(value: int, reason: str) -> str:
    """The canonical name of OTLP status code `value`; DecodeError (`reason`) when it is none."""
    if 0 <= value < len(STATUS_NAMES):
        return STATUS_NAMES[value]
    raise DecodeError(reason, f"status code {value} is not an OTLP StatusCode (0-2)")


def carried_value(value: Any) -> AttributeValue:
    """A decoded AnyValue (maps as dicts) as the Avro attribute union carries it: a map, or an
    array holding an array or a map, becomes its otel_traces text; anything else is kept."""
    if isinstance(value, dict) or (
        isinstance(value, list) and any(isinstance(item, list | dict) for item in value)
    ):
        return attribute_text(value)
    result: AttributeValue = value
    return result


# ---------------------------------------------------------------- protobuf


def _pb_value(value: Any) -> Any:
    """An OTLP AnyValue message as a Python value (kvlist as a dict, decoded later)."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        return value.double_value
    if which == "bool_value":
        return value.bool_value
    if which == "bytes_value":
        return value.bytes_value
    if which == "array_value":
        return [_pb_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _pb_value(kv.value) for kv in value.kvlist_value.values}
    return None


def _pb_attributes(key_values: Any) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    for kv in key_values:
        value = kv.value
        which = value.WhichOneof("value")
        # Most values are strings: read those without the generic conversion.
        if which == "string_value":
            out[kv.key] = value.string_value
            continue
        out[kv.key] = carried_value(_pb_value(value))
    return out


def otlp_proto_columns(data: bytes) -> PayloadSpans:
    """The spans of a protobuf-encoded OTLP ExportTraceServiceRequest, as span columns."""
    try:
        request = ExportTraceServiceRequest.FromString(data)
    except (ProtobufDecodeError, ValueError, RecursionError) as err:
        raise DecodeError(
            "otlp-proto-decode",
            f"not a protobuf ExportTraceServiceRequest ({err}); if the Collector's kafka "
            "exporter writes otlp_json, read this topic with source format otlp_json",
        ) from err
    try:
        return _columns_from_request(request)
    except RecursionError as err:
        raise DecodeError("otlp-proto-shape", "attribute values nested too deeply") from err


def spans_from_otlp_proto(data: bytes) -> list[Span]:
    """The spans of a protobuf-encoded OTLP ExportTraceServiceRequest, as span dicts."""
    return otlp_proto_columns(data).spans()


_ROOT = bytes(8)
_KINDS = len(KIND_NAMES)
_STATUSES = len(STATUS_NAMES)


def _columns_from_request(request: Any) -> PayloadSpans:
    builder = SpanColumnsBuilder()
    add = builder.add_raw
    positions: list[int] = []
    misfits: list[tuple[int, Span]] = []
    position = 0
    for resource_spans in request.resource_spans:
        # Converted once per resource; its spans share the map.
        resource_attrs = _pb_attributes(resource_spans.resource.attributes)
        service = resource_attrs.get("service.name")
        service_name = service if isinstance(service, str) and service else DEFAULT_SERVICE_NAME
        resource = -1
        for scope_spans in resource_spans.scope_spans:
            scope_name = scope_spans.scope.name
            scope_version = scope_spans.scope.version
            for pb in scope_spans.spans:
                events = [
                    (ev.time_unix_nano, ev.name, _pb_attributes(ev.attributes))
                    for ev in pb.events
                ] if pb.events else []  # fmt: skip
                links = [
                    (link.trace_id.hex(), link.span_id.hex(), link.trace_state,
                     _pb_attributes(link.attributes))
                    for link in pb.links
                ] if pb.links else []  # fmt: skip
                kind = pb.kind
                if not 0 <= kind < _KINDS:
                    kind_name(kind, "invalid-kind")
                status = pb.status
                code = status.code
                if not 0 <= code < _STATUSES:
                    status_name(code, "invalid-status")
                attributes = _pb_attributes(pb.attributes)
                trace_id, span_id, parent = pb.trace_id, pb.span_id, pb.parent_span_id
                start, end = pb.start_time_unix_nano, pb.end_time_unix_nano
                if (
                    len(trace_id) == 16
                    and len(span_id) == 8
                    and (not parent or (len(parent) == 8 and parent != _ROOT))
                    and start <= INT64_MAX
                    and end <= INT64_MAX
                ):
                    if resource < 0:
                        resource = builder.add_resource(resource_attrs)
                    texts = (pb.name, service_name, pb.trace_state, status.message, scope_name,
                             scope_version, "otlp_proto")  # fmt: skip
                    add(trace_id, span_id, parent or _ROOT, start, end, kind, code, texts,
                        attributes, resource, events, links)  # fmt: skip
                    positions.append(position)
                else:
                    misfits.append((position, {
                        "trace_id": trace_id.hex(),
                        "span_id": span_id.hex(),
                        "parent_span_id": parent.hex(),
                        "trace_state": pb.trace_state,
                        "name": pb.name,
                        "kind": KIND_NAMES[kind],
                        "start_time_unix_nano": start,
                        "end_time_unix_nano": end,
                        "status_code": STATUS_NAMES[code],
                        "status_message": status.message,
                        "service_name": service_name,
                        "resource_attributes": dict(resource_attrs),
                        "scope_name": scope_name,
                        "scope_version": scope_version,
                        "attributes": attributes,
                        "events": [
                            {"time_unix_nano": t, "name": n, "attributes": a} for t, n, a in events
                        ],
                        "links": [
                            {"trace_id": t, "span_id": i, "trace_state": ts, "attributes": a}
                            for t, i, ts, a in links
                        ],
                        "source_format": "otlp_proto",
                    }))  # fmt: skip
                position += 1
    return PayloadSpans(builder.build(), positions if misfits else None, misfits)
