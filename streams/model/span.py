"""The canonical span: OpenTelemetry's data model, flattened, as the Avro `Span` record decodes."""

from __future__ import annotations

from typing import Any, TypedDict

SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUS_CODES = ("UNSET", "OK", "ERROR")

AttributeValue = None | bool | int | float | str | bytes | list[Any]


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
