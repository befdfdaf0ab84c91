"""The canonical span: OpenTelemetry's data model, flattened, as the Avro `Span` record decodes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUS_CODES = ("UNSET", "OK", "ERROR")

AttributeValue = None | bool | int | float | str | bytes | list[Any]

UNKNOWN_SERVICE = "unknown_service"
"""The service name of a span that names none (OpenTelemetry's default)."""

ZIPKIN_FORMAT = "zipkin_json"
"""`source_format` of spans that came through the Zipkin bridge (streams.ingest.zipkin)."""
ZIPKIN_SHARED = "zipkin.shared"
"""Attribute of a Zipkin span reported `shared`: a server half under its client's span id."""
ZIPKIN_REMOTE_SERVICE = "zipkin.remote_service_name"
"""Attribute holding a Zipkin span's remoteEndpoint.serviceName ("" for none) where
`peer.service` does not: only when a `peer.service` tag overrode it (streams.ingest.zipkin)."""


class SpanEvent(TypedDict):
    """A timestamped event inside a span."""

    time_unix_nano: int
    name: str
    attributes: dict[str, AttributeValue]


class SpanLink(TypedDict):
    """A link from a span to a span of another (or the same) trace."""

    trace_id: str
    span_id: str
    trace_state: str
    attributes: dict[str, AttributeValue]


class Span(TypedDict):
    """One span, as fastavro decodes schemas/avro/span.avsc."""

    trace_id: str
    span_id: str
    parent_span_id: str
    trace_state: str
    name: str
    kind: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    status_code: str
    status_message: str
    service_name: str
    resource_attributes: dict[str, AttributeValue]
    scope_name: str
    scope_version: str
    attributes: dict[str, AttributeValue]
    events: list[SpanEvent]
    links: list[SpanLink]
    source_format: str


def optional_fields() -> dict[str, Any]:
    """The span's optional fields at their schema defaults, in fresh containers."""
    return {
        "parent_span_id": "",
        "trace_state": "",
        "kind": "INTERNAL",
        "status_code": "UNSET",
        "status_message": "",
        "resource_attributes": {},
        "scope_name": "",
        "scope_version": "",
        "attributes": {},
        "events": [],
        "links": [],
        "source_format": "tracepipe",
    }


def make_span(
    trace_id: str,
    span_id: str,
    name: str,
    service_name: str,
    start_time_unix_nano: int,
    end_time_unix_nano: int,
    **fields: Any,
) -> Span:
    """A span with every optional field at its schema default; keyword fields override."""
    given = {
        **optional_fields(),
        "trace_id": trace_id,
        "span_id": span_id,
        "name": name,
        "service_name": service_name,
        "start_time_unix_nano": start_time_unix_nano,
        "end_time_unix_nano": end_time_unix_nano,
        "resource_attributes": {"service.name": service_name},
        **fields,
    }
    # In the schema's field order, as fastavro decodes a span.
    span = {field: given.pop(field) for field in Span.__annotations__}
    span.update(given)
    return span  # type: ignore[return-value]


SPAN_FIELDS = tuple(Span.__annotations__)
"""The span's fields in schema order: the order of a SpanRow."""

SpanRow = tuple[Any, ...]
"""A span as a tuple in SPAN_FIELDS order, events and links None when empty (and, in the slim
rows assembly holds by default, attributes and resource attributes None: see
streams.assemble.compact): the form trace assembly holds and analyses (no dict per span;
`span_from_row` gives the dict back)."""

(
    TRACE_ID, SPAN_ID, PARENT_SPAN_ID, TRACE_STATE, NAME, KIND, START, END, STATUS_CODE,
    STATUS_MESSAGE, SERVICE_NAME, RESOURCE_ATTRIBUTES, SCOPE_NAME, SCOPE_VERSION, ATTRIBUTES,
    EVENTS, LINKS, SOURCE_FORMAT,
) = range(len(SPAN_FIELDS))  # fmt: skip
"""SpanRow positions, named as the Span fields they hold."""

_ROW_LISTS = (EVENTS, LINKS)


def span_row(span: Span) -> SpanRow:
    """The row of a span dict (its event and link lists shared, None when empty)."""
    fields = SPAN_FIELDS
    values = list(span.values()) if tuple(span) == fields else [span[f] for f in fields]  # type: ignore[literal-required]
    for i in _ROW_LISTS:
        if not values[i]:
            values[i] = None
    return tuple(values)


def span_rows(spans: Sequence[Span] | Sequence[SpanRow]) -> Sequence[SpanRow]:
    """Spans as rows: rows as given, span dicts converted (analyses take either)."""
    if not spans or type(spans[0]) is tuple:
        return spans  # type: ignore[return-value]
    return [span_row(s) for s in spans]  # type: ignore[arg-type]


def span_from_row(row: SpanRow) -> Span:
    """The span dict of a row (fresh event and link lists; shared attribute maps)."""
    span: dict[str, Any] = dict(zip(SPAN_FIELDS, row, strict=True))
    span["attributes"] = row[ATTRIBUTES] or {}
    span["resource_attributes"] = row[RESOURCE_ATTRIBUTES] or {}
    span["events"] = list(row[EVENTS] or ())
    span["links"] = list(row[LINKS] or ())
    return span  # type: ignore[return-value]
