"""Zipkin v2 JSON span lists (what Zipkin's Kafka reporters send) to canonical spans.

Follows the OpenTelemetry specification's Zipkin mapping, read in reverse:
ids are hex (a 16-hex trace id is left-padded to 32), times are microseconds (-> nanos),
`localEndpoint.serviceName` is the service, `remoteEndpoint` becomes `peer.service`,
`network.peer.address` and `network.peer.port`, tags become string attributes, annotations
become events, and the tags `otel.status_code` / `otel.status_description` / `error` become
the status (and are not kept as attributes). A kind-less span stays kind-less (INTERNAL): the
service graph reads Zipkin's model from what is kept (streams.assemble.graph), so where a
`peer.service` tag hides the remote endpoint's service name (or names a peer the span has no
remote endpoint for), that name is kept in `zipkin.remote_service_name` ("" for none).

Shared spans: with B3's default "join" mode a server records its side under the client's
span id and marks it `shared`. Two spans with one id cannot coexist in one trace (storage
and assembly key by span id), so the shared server span gets a new, deterministic id derived
from (trace id, span id), becomes a child of the client span, and keeps the original id in
`zipkin.original_span_id`. Spans of the same service in the same payload whose parent is the
shared id are re-parented to the new id (they are the server's children); children that
arrive in other payloads stay under the client span.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from streams.errors import DecodeError
from streams.ingest.otlp import DEFAULT_SERVICE_NAME
from streams.ingest.otlp_json import _load_json
from streams.model.span import (
    ZIPKIN_FORMAT,
    ZIPKIN_REMOTE_SERVICE,
    ZIPKIN_SHARED,
    AttributeValue,
    Span,
    SpanEvent,
)

_SHAPE = "zipkin-json-shape"
_KINDS = {"SERVER": "SERVER", "CLIENT": "CLIENT", "PRODUCER": "PRODUCER", "CONSUMER": "CONSUMER"}
_MICROS_MAX = (2**63 - 1) // 1000

SHARED_ATTRIBUTE = ZIPKIN_SHARED
DEBUG_ATTRIBUTE = "zipkin.debug"
ORIGINAL_SPAN_ID_ATTRIBUTE = "zipkin.original_span_id"


def _shape(where: str, problem: str) -> DecodeError:
    return DecodeError(_SHAPE, f"{where}: {problem} (expected a Zipkin v2 JSON span list)")


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _shape(where, f"expected a string, got {type(value).__name__}")
    return value


def _micros(value: Any, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _shape(where, f"expected microseconds as a number, got {type(value).__name__}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _shape(where, f"{value} is not a time")
        value = round(value)
    number = int(value)
    if not 0 <= number <= _MICROS_MAX:
        raise _shape(where, f"{number} microseconds is out of range")
    return number


def _address_attributes(
    endpoint: dict[str, Any], side: str, where: str, attributes: dict[str, AttributeValue]
) -> None:
    """network.<side>.address/.port from an endpoint's ip and port (tags given win)."""
    ip = endpoint.get("ipv6") or endpoint.get("ipv4")
    if ip:
        attributes.setdefault(f"network.{side}.address", _text(ip, where))
    port = _port(endpoint.get("port"), where + ".port")
    if port:
        attributes.setdefault(f"network.{side}.port", port)


def _endpoint(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _shape(where, f"expected an endpoint object, got {type(value).__name__}")
    return value


def _port(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise _shape(where, f"port must be an integer 0-65535, got {value!r:.40}")
    return value or None


def _derived_span_id(trace_id: str, span_id: str) -> str:
    digest = hashlib.blake2b(f"{trace_id}/{span_id}/server".encode(), digest_size=8).hexdigest()
    return digest if digest != "0" * 16 else "1" * 16


def _convert(raw: Any, where: str) -> Span:
    if not isinstance(raw, dict):
        raise _shape(where, f"expected a span object, got {type(raw).__name__}")
    trace_id = _text(raw.get("traceId"), where + ".traceId").lower()
    if len(trace_id) == 16:
        trace_id = trace_id.rjust(32, "0")
    span_id = _text(raw.get("id"), where + ".id").lower()
    parent = _text(raw.get("parentId"), where + ".parentId").lower()

    kind_text = raw.get("kind")
    if kind_text is None:
        kind = "INTERNAL"
    elif isinstance(kind_text, str) and kind_text in _KINDS:
        kind = _KINDS[kind_text]
    else:
        raise DecodeError(
            "invalid-kind", f"{where}.kind: {kind_text!r:.40} is not SERVER/CLIENT/PRODUCER/"
            "CONSUMER (or absent)"
        )

    start_us = _micros(raw.get("timestamp"), where + ".timestamp")
    duration_us = _micros(raw.get("duration"), where + ".duration")
    start = start_us * 1000
    end = (start_us + duration_us) * 1000 if start_us else 0

    local = _endpoint(raw.get("localEndpoint"), where + ".localEndpoint")
    remote = _endpoint(raw.get("remoteEndpoint"), where + ".remoteEndpoint")
    service_name = _text(local.get("serviceName"), where + ".localEndpoint.serviceName")
    service_name = service_name or DEFAULT_SERVICE_NAME

    tags = raw.get("tags")
    if tags is None:
        tags = {}
    if not isinstance(tags, dict):
        raise _shape(where + ".tags", f"expected an object, got {type(tags).__name__}")
    attributes: dict[str, AttributeValue] = {}
    for key, value in tags.items():
        if not isinstance(value, str):
            raise _shape(f"{where}.tags[{key!r}]", "Zipkin tag values must be strings")
        attributes[key] = value

    # Status per the spec's Zipkin mapping; the status tags are consumed, not kept.
    code_tag = attributes.pop("otel.status_code", None)
    description = attributes.pop("otel.status_description", None)
    error = attributes.pop("error", None)
    status_code, status_message = "UNSET", ""
    if code_tag in ("OK", "ERROR", "UNSET"):
        status_code = str(code_tag)
    elif code_tag is not None:
        attributes["otel.status_code"] = code_tag  # not a code we know: keep it visible
    if error is not None:
        if status_code == "OK":
            attributes["error"] = error  # contradicts the explicit code: keep it visible
        else:
            status_code = "ERROR"
    if status_code == "ERROR":
        # The spec's Zipkin mapping puts the description in `error` ("" when there is none).
        status_message = str(error or description or "")

    remote_service = _text(remote.get("serviceName"), where + ".remoteEndpoint.serviceName")
    peer_tag = attributes.get("peer.service")
    if peer_tag is None:
        if remote_service:
            attributes["peer.service"] = remote_service
    elif peer_tag != remote_service:
        attributes[ZIPKIN_REMOTE_SERVICE] = remote_service
    _address_attributes(remote, "peer", where + ".remoteEndpoint", attributes)
    _address_attributes(local, "local", where + ".localEndpoint", attributes)
    if raw.get("debug") is True:
        attributes[DEBUG_ATTRIBUTE] = True

    if raw.get("shared") is True:
        attributes[SHARED_ATTRIBUTE] = True
        if kind == "SERVER" and span_id:
            attributes[ORIGINAL_SPAN_ID_ATTRIBUTE] = span_id
            parent = span_id
            span_id = _derived_span_id(trace_id, span_id)

    events: list[SpanEvent] = []
    annotations = raw.get("annotations")
    if annotations is None:
        annotations = []
    if not isinstance(annotations, list):
        raise _shape(where + ".annotations", "expected an array")
    for i, annotation in enumerate(annotations):
        here = f"{where}.annotations[{i}]"
        if not isinstance(annotation, dict):
            raise _shape(here, "expected {timestamp, value}")
        events.append(
            {
                "time_unix_nano": _micros(annotation.get("timestamp"), here + ".timestamp")
                * 1000,
                "name": _text(annotation.get("value"), here + ".value"),
                "attributes": {},
            }
        )

    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent,
        "trace_state": "",
        "name": _text(raw.get("name"), where + ".name"),
        "kind": kind,
        "start_time_unix_nano": start,
        "end_time_unix_nano": end,
        "status_code": status_code,
        "status_message": status_message,
        "service_name": service_name,
        "resource_attributes": {"service.name": service_name},
        "scope_name": "",
        "scope_version": "",
        "attributes": attributes,
        "events": events,
        "links": [],
        "source_format": ZIPKIN_FORMAT,
    }


def spans_from_zipkin_json(data: bytes) -> list[Span]:
    """Canonical spans of a Zipkin v2 JSON span list (`[{"traceId": ..., "id": ...}, ...]`)."""
    doc = _load_json(data, "zipkin-json-decode", "expected a Zipkin v2 JSON span list")
    if not isinstance(doc, list):
        raise _shape("payload", f"expected a JSON list of spans, got {type(doc).__name__}")
    spans = [_convert(raw, f"[{i}]") for i, raw in enumerate(doc)]
    _reparent_shared_children(spans)
    return spans


def _reparent_shared_children(spans: list[Span]) -> None:
    # (trace, original id, service) -> the shared server span's new id
    moved = {
        (s["trace_id"], s["parent_span_id"], s["service_name"]): s["span_id"]
        for s in spans
        if ORIGINAL_SPAN_ID_ATTRIBUTE in s["attributes"]
    }
    if not moved:
        return
    for span in spans:
        if ORIGINAL_SPAN_ID_ATTRIBUTE in span["attributes"]:
            continue
        new_parent = moved.get((span["trace_id"], span["parent_span_id"], span["service_name"]))
        if new_parent is not None:
            span["parent_span_id"] = new_parent
