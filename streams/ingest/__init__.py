"""Ingestion's pure core: foreign payloads (OTLP, Zipkin, our JSON form) to canonical spans.

No Kafka and no Faust here: `columns_from_payload` turns one record's bytes into span columns
(the bridge's form) and `spans_from_payload` into span dicts (`tracepipe produce`'s), or raises a
DecodeError whose reason becomes the dead-letter header; `validate_span` / `validate_columns`
check and repair spans, and `detect_format` sniffs a file for `tracepipe produce`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from streams.errors import DecodeError
from streams.ingest.otlp import (
    DEFAULT_SERVICE_NAME,
    carried_value,
    otlp_proto_columns,
    spans_from_otlp_proto,
)
from streams.ingest.otlp_json import _load_json, spans_from_otlp_json
from streams.ingest.payload import PayloadSpans, payload_spans
from streams.ingest.validate import check_record_size, validate_span
from streams.ingest.zipkin import spans_from_zipkin_json
from streams.model.span import AttributeValue, Span, SpanEvent, SpanLink

__all__ = [
    "SOURCE_FORMATS",
    "PayloadSpans",
    "check_record_size",
    "columns_from_payload",
    "detect_format",
    "spans_from_otlp_json",
    "spans_from_otlp_proto",
    "spans_from_payload",
    "spans_from_tracepipe_json",
    "spans_from_zipkin_json",
    "validate_span",
]

SOURCE_FORMATS = ("otlp_proto", "otlp_json", "zipkin_json", "tracepipe_json")

_SHAPE = "tracepipe-json-shape"
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_REQUIRED = ("trace_id", "span_id", "name", "start_time_unix_nano", "end_time_unix_nano")
_SPAN_FIELDS = frozenset(Span.__annotations__)


def _shape(where: str, problem: str) -> DecodeError:
    return DecodeError(_SHAPE, f"{where}: {problem}")


def _str(obj: dict[str, Any], key: str, where: str, default: str = "") -> str:
    value = obj.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise _shape(f"{where}.{key}", f"expected a string, got {type(value).__name__}")
    return value


def _int(obj: dict[str, Any], key: str, where: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _shape(f"{where}.{key}", f"expected an integer (unix nanoseconds), got {value!r:.40}")
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise _shape(f"{where}.{key}", f"{value} is out of the int64 range")
    return value


def _attr_value(value: Any, where: str) -> AttributeValue:
    if value is None or isinstance(value, bool | str | float):
        return value
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise _shape(where, f"{value} is out of the int64 range")
        return value
    if isinstance(value, list | dict):
        # Same rule as OTLP: a map, or an array of arrays or maps, is kept as its otel_traces text.
        carried = carried_value(value)
        if isinstance(carried, list):
            return [_attr_value(v, f"{where}[{i}]") for i, v in enumerate(carried)]
        return carried
    raise _shape(where, f"unsupported attribute value {type(value).__name__}")


def _attrs(obj: dict[str, Any], key: str, where: str) -> dict[str, AttributeValue]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _shape(f"{where}.{key}", "expected an object of attribute name -> value")
    return {k: _attr_value(v, f"{where}.{key}[{k!r}]") for k, v in value.items()}


def _list_of_objects(obj: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _shape(f"{where}.{key}", "expected a list of objects")
    return value


def _tracepipe_span(obj: Any, where: str) -> Span:
    if not isinstance(obj, dict):
        raise _shape(where, f"expected a span object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - _SPAN_FIELDS)
    if unknown:
        raise _shape(
            where,
            f"unknown field(s) {', '.join(unknown)}; tracepipe_json uses the canonical "
            f"snake_case names ({', '.join(sorted(_SPAN_FIELDS))})",
        )
    missing = [key for key in _REQUIRED if key not in obj]
    if missing:
        raise _shape(where, f"missing required field(s) {', '.join(missing)}")
    resource = _attrs(obj, "resource_attributes", where)
    service = resource.get("service.name")
    service_name = _str(
        obj, "service_name", where,
        default=service if isinstance(service, str) and service else DEFAULT_SERVICE_NAME,
    )
    if "service.name" not in resource:
        resource["service.name"] = service_name
    events: list[SpanEvent] = []
    for i, ev in enumerate(_list_of_objects(obj, "events", where)):
        here = f"{where}.events[{i}]"
        events.append({
            "time_unix_nano": _int(ev, "time_unix_nano", here),
            "name": _str(ev, "name", here),
            "attributes": _attrs(ev, "attributes", here),
        })
    links: list[SpanLink] = []
    for i, link in enumerate(_list_of_objects(obj, "links", where)):
        here = f"{where}.links[{i}]"
        links.append({
            "trace_id": _str(link, "trace_id", here),
            "span_id": _str(link, "span_id", here),
            "trace_state": _str(link, "trace_state", here),
            "attributes": _attrs(link, "attributes", here),
        })
    return {
        "trace_id": _str(obj, "trace_id", where),
        "span_id": _str(obj, "span_id", where),
        "parent_span_id": _str(obj, "parent_span_id", where),
        "trace_state": _str(obj, "trace_state", where),
        "name": _str(obj, "name", where),
        "kind": _str(obj, "kind", where, "INTERNAL"),
        "start_time_unix_nano": _int(obj, "start_time_unix_nano", where),
        "end_time_unix_nano": _int(obj, "end_time_unix_nano", where),
        "status_code": _str(obj, "status_code", where, "UNSET"),
        "status_message": _str(obj, "status_message", where),
        "service_name": service_name,
        "resource_attributes": resource,
        "scope_name": _str(obj, "scope_name", where),
        "scope_version": _str(obj, "scope_version", where),
        "attributes": _attrs(obj, "attributes", where),
        "events": events,
        "links": links,
        "source_format": _str(obj, "source_format", where, "tracepipe"),
    }


def spans_from_tracepipe_json(data: bytes) -> list[Span]:
    """Spans of our JSON form: one object or a list, canonical field names, optional defaults."""
    doc = _load_json(data, "tracepipe-json-decode", "expected a span object or a list of them")
    docs = doc if isinstance(doc, list) else [doc]
    try:
        return [_tracepipe_span(obj, f"[{i}]") for i, obj in enumerate(docs)]
    except RecursionError as err:
        raise _shape("payload", "attribute values nested too deeply") from err


_CONVERTERS: dict[str, Callable[[bytes], list[Span]]] = {
    "otlp_proto": spans_from_otlp_proto,
    "otlp_json": spans_from_otlp_json,
    "zipkin_json": spans_from_zipkin_json,
    "tracepipe_json": spans_from_tracepipe_json,
}


def spans_from_payload(data: bytes, source_format: str) -> list[Span]:
    """Canonical (not yet validated) spans of one payload in one of SOURCE_FORMATS."""
    convert = _CONVERTERS.get(source_format)
    if convert is None:
        raise DecodeError(
            "unknown-format",
            f"source format {source_format!r} is not one of {', '.join(SOURCE_FORMATS)}",
        )
    return convert(data)


def columns_from_payload(data: bytes, source_format: str) -> PayloadSpans:
    """The (not yet validated) spans of one payload in one of SOURCE_FORMATS, as span columns."""
    if source_format == "otlp_proto":
        return otlp_proto_columns(data)
    return payload_spans(spans_from_payload(data, source_format))


def detect_format(data: bytes) -> str:
    """Guess a file's source format: OTLP/JSON, Zipkin v2 JSON, our JSON form, else OTLP proto."""
    head = data.lstrip()[:1]
    if head not in (b"{", b"["):
        # An ExportTraceServiceRequest starts with field 1 (0x0a), never with '{' or '['.
        return "otlp_proto"
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as err:
        if data[:1] == b"\n":
            # Protobuf's first tag, 0x0a, reads as a newline: a length of 123 or 91 after it
            # as '{' or '['.
            return "otlp_proto"
        raise DecodeError("unknown-format", f"looks like JSON but does not parse: {err}") from err
    first = doc[0] if isinstance(doc, list) and doc else doc
    if isinstance(doc, list) and not doc:
        return "tracepipe_json"
    if isinstance(first, dict):
        if "resourceSpans" in first or "resource_spans" in first:
            return "otlp_json"
        if "trace_id" in first:
            return "tracepipe_json"
        if "traceId" in first and isinstance(doc, list):
            return "zipkin_json"
    raise DecodeError(
        "unknown-format",
        "JSON that is neither OTLP/JSON ({\"resourceSpans\": ...}), a Zipkin v2 span list "
        "([{\"traceId\": ...}]) nor tracepipe spans ({\"trace_id\": ...}); name the format",
    )
