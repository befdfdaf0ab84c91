"""``/ui/trace/<id>/otlp.json``: a stored trace as an OTLP/JSON ExportTraceServiceRequest.

The file is what `tracepipe produce` reads (streams/ingest/otlp_json.py): one ``resourceSpans``
entry per service and resource, one ``scopeSpans`` per instrumentation scope, ids in hex, times
and enums as the OTLP/JSON encoding writes them (64-bit integers as decimal strings, kind and
status code as numbers). otel_traces keeps attribute values as text (Map(String, String)), so
every attribute goes out as a ``stringValue`` of the text stored: produced again, each span is
stored with the same columns as before, except its source format (now ``otlp_json``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streams.errors import InputError
from streams.ingest.otlp import KIND_NAMES, STATUS_NAMES
from streams.model.span import AttributeValue, Span
from streams.query import Reader, parse_trace_id
from streams.query.waterfall import stored_spans
from streams.query.web import Page
from streams.query.web.markup import message_page

_KIND_NUMBERS = {name: i for i, name in enumerate(KIND_NAMES)}
_STATUS_NUMBERS = {name: i for i, name in enumerate(STATUS_NAMES)}
SERVICE_NAME = "service.name"


@dataclass(frozen=True)
class Download:
    """A file the web view serves: its bytes, content type and the name to save it under."""

    body: bytes
    content_type: str
    filename: str


def _attributes(values: Mapping[str, AttributeValue]) -> list[dict[str, Any]]:
    return [{"key": k, "value": {"stringValue": str(v)}} for k, v in sorted(values.items())]


def _otlp_span(span: Span) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": span["trace_id"],
        "spanId": span["span_id"],
        "parentSpanId": span["parent_span_id"],
        "traceState": span["trace_state"],
        "name": span["name"],
        "kind": _KIND_NUMBERS.get(span["kind"], 0),
        "startTimeUnixNano": str(span["start_time_unix_nano"]),
        "endTimeUnixNano": str(span["end_time_unix_nano"]),
        "attributes": _attributes(span["attributes"]),
        "events": [
            {
                "timeUnixNano": str(e["time_unix_nano"]),
                "name": e["name"],
                "attributes": _attributes(e["attributes"]),
            }
            for e in span["events"]
        ],
        "links": [
            {
                "traceId": lk["trace_id"],
                "spanId": lk["span_id"],
                "traceState": lk["trace_state"],
                "attributes": _attributes(lk["attributes"]),
            }
            for lk in span["links"]
        ],
        "status": {
            "code": _STATUS_NUMBERS.get(span["status_code"], 0),
            "message": span["status_message"],
        },
    }
    return out


def otlp_request(spans: Sequence[Span]) -> dict[str, Any]:
    """The spans as an OTLP/JSON ExportTraceServiceRequest, in the order given.

    The service rides in the resource's ``service.name`` (where OTLP readers take it from), so
    a stored resource without one gets the span's service added.
    """
    resources: dict[str, dict[str, Any]] = {}
    scopes: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for span in spans:
        attrs = dict(span["resource_attributes"])
        attrs.setdefault(SERVICE_NAME, span["service_name"])
        resource_key = json.dumps(sorted((k, str(v)) for k, v in attrs.items()))
        if resource_key not in resources:
            resources[resource_key] = {
                "resource": {"attributes": _attributes(attrs)},
                "scopeSpans": [],
            }
        scope_key = (resource_key, span["scope_name"], span["scope_version"])
        if scope_key not in scopes:
            scopes[scope_key] = []
            resources[resource_key]["scopeSpans"].append(
                {
                    "scope": {"name": span["scope_name"], "version": span["scope_version"]},
                    "spans": scopes[scope_key],
                }
            )
        scopes[scope_key].append(_otlp_span(span))
    return {"resourceSpans": list(resources.values())}


def trace_download(reader: Reader, trace_id: str) -> Download | Page:
    """The stored spans of a trace as an OTLP/JSON file, or a page that says why there are none."""
    try:
        wanted = parse_trace_id(trace_id)
    except InputError as err:
        return message_page(400, "Not a trace id", f"{err}.", "search")
    spans = stored_spans(reader, wanted)
    if not spans:
        return message_page(
            404,
            "Trace not found",
            f"No spans are stored for trace {wanted}: nothing to download.",
            "search",
        )
    body = json.dumps(otlp_request(spans), ensure_ascii=False, separators=(",", ":"))
    return Download(body.encode(), "application/json", f"trace-{wanted}.json")
