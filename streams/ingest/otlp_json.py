"""OTLP/JSON `ExportTraceServiceRequest` to canonical span dicts: every field's shape checked,
camelCase and snake_case keys, hex ids (base64 ones converted), enum numbers or names."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable
from typing import Any

from streams.errors import DecodeError
from streams.ingest.otlp import (
    DEFAULT_SERVICE_NAME,
    INT64_MAX,
    INT64_MIN,
    KIND_NAMES,
    STATUS_NAMES,
    UINT64_MAX,
    carried_value,
    kind_name,
    status_name,
)
from streams.model.span import AttributeValue, Span, SpanEvent, SpanLink

# The JSON mapping of protobuf also allows enum names; OTLP/JSON senders use integers.
_KIND_BY_NAME = {f"SPAN_KIND_{name}": i for i, name in enumerate(KIND_NAMES)}
_STATUS_BY_NAME = {f"STATUS_CODE_{name}": i for i, name in enumerate(STATUS_NAMES)}


_SHAPE = "otlp-json-shape"


def _shape(where: str, problem: str) -> DecodeError:
    return DecodeError(_SHAPE, f"{where}: {problem} (see the OTLP/JSON encoding in the OTLP spec)")


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    # OTLP/JSON uses lowerCamelCase; protobuf JSON parsers also accept the proto field name.
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _obj(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _shape(where, f"expected an object, got {type(value).__name__}")
    return value


def _arr(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _shape(where, f"expected an array, got {type(value).__name__}")
    return value


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _shape(where, f"expected a string, got {type(value).__name__}")
    return value


def _integer(value: Any, where: str, low: int, high: int) -> int:
    """An int64/uint64 field: a JSON number or a decimal string."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise _shape(where, "expected an integer, got a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value, 10)
        except ValueError:
            raise _shape(where, f"expected a decimal integer, got {value[:40]!r}") from None
    else:
        raise _shape(where, f"expected an integer, got {type(value).__name__}")
    if not low <= number <= high:
        raise _shape(where, f"{number} is out of range")
    return number


def _enum(value: Any, where: str, names: dict[str, int]) -> int:
    if isinstance(value, str) and value in names:
        return names[value]
    return _integer(value, where, INT64_MIN, INT64_MAX)


def _hex_id(value: Any, where: str, size: int) -> str:
    """A trace/span id: hex per OTLP/JSON; base64 (protobuf's default JSON) is converted."""
    text = _text(value, where)
    if len(text) == size * 2:
        return text.lower()
    # Some exporters use protobuf's generic JSON mapping, which writes bytes as base64.
    if text and len(text) == 4 * math.ceil(size / 3):
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return text
        if len(raw) == size:
            return raw.hex()
    # Left as is: validation rejects it with the id-specific reason.
    return text


def _json_value(value: Any, where: str) -> Any:
    """An OTLP/JSON AnyValue object as a Python value (kvlist as a dict)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _shape(where, f"expected an AnyValue object, got {type(value).__name__}")
    if not value:
        return None
    if len(value) != 1:
        raise _shape(where, f"AnyValue must have exactly one field, got {sorted(value)}")
    ((key, inner),) = value.items()
    if key == "stringValue" or key == "string_value":
        return _text(inner, where)
    if key == "intValue" or key == "int_value":
        return _integer(inner, where, INT64_MIN, INT64_MAX)
    if key == "boolValue" or key == "bool_value":
        if not isinstance(inner, bool):
            raise _shape(where, f"boolValue must be true or false, got {inner!r:.40}")
        return inner
    if key == "doubleValue" or key == "double_value":
        if isinstance(inner, bool):
            raise _shape(where, "doubleValue must be a number, got a boolean")
        if isinstance(inner, int | float):
            return float(inner)
        if isinstance(inner, str) and inner in ("NaN", "Infinity", "-Infinity"):
            return float(inner)
        raise _shape(where, f"doubleValue must be a number, got {inner!r:.40}")
    if key == "bytesValue" or key == "bytes_value":
        try:
            return base64.b64decode(_text(inner, where), validate=True)
        except (binascii.Error, ValueError):
            raise _shape(where, "bytesValue must be base64") from None
    if key == "arrayValue" or key == "array_value":
        items = _arr(_obj(inner, where).get("values"), where + ".values")
        return [_json_value(v, f"{where}.values[{i}]") for i, v in enumerate(items)]
    if key == "kvlistValue" or key == "kvlist_value":
        pairs = _arr(_obj(inner, where).get("values"), where + ".values")
        return {
            _text(_obj(kv, where).get("key"), where + ".key"): _json_value(
                _obj(kv, where).get("value"), f"{where}.values[{i}]"
            )
            for i, kv in enumerate(pairs)
        }
    raise _shape(where, f"unknown AnyValue field {key!r}")


def _json_attributes(value: Any, where: str) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    for i, kv in enumerate(_arr(value, where)):
        here = f"{where}[{i}]"
        kv = _obj(kv, here)
        decoded = carried_value(_json_value(kv.get("value"), here + ".value"))
        out[_text(kv.get("key"), here + ".key")] = decoded
    return out


def _json_span(
    raw: Any, where: str, common: tuple[str, dict[str, AttributeValue], str, str]
) -> Span:
    service_name, resource_attrs, scope_name, scope_version = common
    obj = _obj(raw, where)
    status = _obj(obj.get("status"), where + ".status")
    events: list[SpanEvent] = []
    for i, ev in enumerate(_arr(obj.get("events"), where + ".events")):
        here = f"{where}.events[{i}]"
        ev = _obj(ev, here)
        events.append(
            {
                "time_unix_nano": _integer(
                    _get(ev, "timeUnixNano", "time_unix_nano"), here + ".timeUnixNano",
                    0, UINT64_MAX,
                ),
                "name": _text(ev.get("name"), here + ".name"),
                "attributes": _json_attributes(ev.get("attributes"), here + ".attributes"),
            }
        )
    links: list[SpanLink] = []
    for i, link in enumerate(_arr(obj.get("links"), where + ".links")):
        here = f"{where}.links[{i}]"
        link = _obj(link, here)
        links.append(
            {
                "trace_id": _hex_id(_get(link, "traceId", "trace_id"), here + ".traceId", 16),
                "span_id": _hex_id(_get(link, "spanId", "span_id"), here + ".spanId", 8),
                "trace_state": _text(_get(link, "traceState", "trace_state"), here),
                "attributes": _json_attributes(link.get("attributes"), here + ".attributes"),
            }
        )
    parent = _get(obj, "parentSpanId", "parent_span_id")
    return {
        "trace_id": _hex_id(_get(obj, "traceId", "trace_id"), where + ".traceId", 16),
        "span_id": _hex_id(_get(obj, "spanId", "span_id"), where + ".spanId", 8),
        "parent_span_id": _hex_id(parent, where + ".parentSpanId", 8) if parent else "",
        "trace_state": _text(_get(obj, "traceState", "trace_state"), where + ".traceState"),
        "name": _text(obj.get("name"), where + ".name"),
        "kind": kind_name(_enum(obj.get("kind"), where + ".kind", _KIND_BY_NAME), "invalid-kind"),
        "start_time_unix_nano": _integer(
            _get(obj, "startTimeUnixNano", "start_time_unix_nano"),
            where + ".startTimeUnixNano", 0, UINT64_MAX,
        ),
        "end_time_unix_nano": _integer(
            _get(obj, "endTimeUnixNano", "end_time_unix_nano"),
            where + ".endTimeUnixNano", 0, UINT64_MAX,
        ),
        "status_code": status_name(
            _enum(status.get("code"), where + ".status.code", _STATUS_BY_NAME), "invalid-status"
        ),
        "status_message": _text(status.get("message"), where + ".status.message"),
        "service_name": service_name,
        "resource_attributes": dict(resource_attrs),
        "scope_name": scope_name,
        "scope_version": scope_version,
        "attributes": _json_attributes(obj.get("attributes"), where + ".attributes"),
        "events": events,
        "links": links,
        "source_format": "otlp_json",
    }


def _load_json(data: bytes, reason: str, hint: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as err:
        # ValueError covers JSONDecodeError and UnicodeDecodeError.
        raise DecodeError(reason, f"not valid JSON ({err}); {hint}") from err


def _guard(convert: Callable[[Any], list[Span]], doc: Any, reason: str) -> list[Span]:
    try:
        return convert(doc)
    except RecursionError as err:
        raise DecodeError(reason, "values nested too deeply") from err


def spans_from_otlp_json(data: bytes) -> list[Span]:
    """Canonical spans of an OTLP/JSON ExportTraceServiceRequest (hex ids, camelCase keys)."""
    doc = _load_json(
        data,
        "otlp-json-decode",
        "expected an OTLP/JSON ExportTraceServiceRequest; if the Collector's kafka exporter "
        "writes otlp_proto, read this topic with source format otlp_proto",
    )
    return _guard(_spans_from_json_doc, doc, _SHAPE)


def _spans_from_json_doc(doc: Any) -> list[Span]:
    root = _obj(doc, "request")
    spans: list[Span] = []
    for r, resource_spans in enumerate(_arr(_get(root, "resourceSpans", "resource_spans"),
                                            "resourceSpans")):
        rwhere = f"resourceSpans[{r}]"
        resource_spans = _obj(resource_spans, rwhere)
        resource = _obj(resource_spans.get("resource"), rwhere + ".resource")
        resource_attrs = _json_attributes(
            resource.get("attributes"), rwhere + ".resource.attributes"
        )
        service = resource_attrs.get("service.name")
        service_name = service if isinstance(service, str) and service else DEFAULT_SERVICE_NAME
        scopes = _arr(_get(resource_spans, "scopeSpans", "scope_spans"), rwhere + ".scopeSpans")
        for s, scope_spans in enumerate(scopes):
            swhere = f"{rwhere}.scopeSpans[{s}]"
            scope_spans = _obj(scope_spans, swhere)
            scope = _obj(scope_spans.get("scope"), swhere + ".scope")
            common = (
                service_name,
                resource_attrs,
                _text(scope.get("name"), swhere + ".scope.name"),
                _text(scope.get("version"), swhere + ".scope.version"),
            )
            for i, raw in enumerate(_arr(scope_spans.get("spans"), swhere + ".spans")):
                spans.append(_json_span(raw, f"{swhere}.spans[{i}]", common))
    return spans
