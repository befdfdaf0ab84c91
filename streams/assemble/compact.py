"""Held spans in compact form: tuples that share repeated strings and resource maps.

A decoded span dict costs ~1.7 KiB held; most of it is the dict itself and strings that repeat
across spans (trace id, service, operation, resource attributes). A tuple in fixed field order,
with those parts interned or shared, halves that, and converting back costs well under 1 µs.
Used as the TraceBuffer's span codec (it only needs encode/decode).
"""

from __future__ import annotations

import sys
from typing import Any

from streams.model.columns import SpanColumns, hex_strings
from streams.model.span import SPAN_KINDS, STATUS_CODES, Span

FIELDS = tuple(Span.__annotations__)
_RESOURCE = FIELDS.index("resource_attributes")
_INTERNED = tuple(
    FIELDS.index(name)
    for name in (
        "trace_id",
        "name",
        "kind",
        "status_code",
        "service_name",
        "scope_name",
        "scope_version",
        "source_format",
    )
)
_LISTS = (FIELDS.index("events"), FIELDS.index("links"))
# encode_columns builds the tuple in this order.
assert FIELDS == (
    "trace_id", "span_id", "parent_span_id", "trace_state", "name", "kind",
    "start_time_unix_nano", "end_time_unix_nano", "status_code", "status_message",
    "service_name", "resource_attributes", "scope_name", "scope_version", "attributes",
    "events", "links", "source_format",
)  # fmt: skip
_MAX_SHARED_RESOURCES = 10_000


class CompactSpans:
    """Encodes spans as compact tuples and back; equal resource maps are held once."""

    def __init__(self) -> None:
        self._resources: dict[tuple[Any, ...], dict[str, Any]] = {}

    def _shared_resource(self, resource: dict[str, Any]) -> dict[str, Any]:
        try:
            key = tuple(resource.items())
            shared = self._resources.get(key)
        except TypeError:  # an unhashable (array) value: keep this one as it is
            return resource
        if shared is None:
            if len(self._resources) >= _MAX_SHARED_RESOURCES:
                self._resources.clear()
            self._resources[key] = shared = resource
        return shared

    def encode(self, record: Any) -> tuple[Any, ...]:
        """The compact form of one span."""
        values = list(record.values()) if tuple(record) == FIELDS else [record[f] for f in FIELDS]
        for i in _INTERNED:
            values[i] = sys.intern(values[i])
        values[_RESOURCE] = self._shared_resource(values[_RESOURCE])
        for i in _LISTS:
            if not values[i]:
                values[i] = None
        return tuple(values)

    def encode_columns(self, columns: SpanColumns) -> list[tuple[Any, ...]]:
        """The compact form of every span of a batch, built from its columns (no span dict)."""
        n = len(columns)
        if not n:
            return []
        strings = [sys.intern(s) for s in columns.strings]
        resource_maps = [self._shared_resource(m) for m in columns.resources.dicts(strings)]
        events: list[list[Any] | None] = [None] * n
        for index, when, name, attrs in columns.events:
            bucket = events[index]
            if bucket is None:
                bucket = events[index] = []
            bucket.append({"time_unix_nano": when, "name": name, "attributes": attrs})
        links: list[list[Any] | None] = [None] * n
        for index, trace_id, span_id, state, attrs in columns.links:
            bucket = links[index]
            if bucket is None:
                bucket = links[index] = []
            bucket.append(
                {"trace_id": trace_id, "span_id": span_id, "trace_state": state,
                 "attributes": attrs}
            )  # fmt: skip

        def text(column: str) -> list[str]:
            return [strings[i] for i in columns.text[column].tolist()]

        return list(
            zip(
                [sys.intern(t) for t in hex_strings(columns.trace_id)],
                hex_strings(columns.span_id),
                columns.parent_ids(),
                text("trace_state"),
                text("name"),
                [SPAN_KINDS[k] for k in columns.kind.tolist()],
                columns.start_time_unix_nano.tolist(),
                columns.end_time_unix_nano.tolist(),
                [STATUS_CODES[s] for s in columns.status_code.tolist()],
                text("status_message"),
                text("service_name"),
                [resource_maps[r] for r in columns.resource.tolist()],
                text("scope_name"),
                text("scope_version"),
                columns.attributes.dicts(strings),
                events,
                links,
                text("source_format"),
                strict=True,
            )
        )

    def decode(self, data: Any) -> Span:
        """The span dict of a compact form (lists fresh, shared maps shared)."""
        span: dict[str, Any] = dict(zip(FIELDS, data, strict=True))
        for i in _LISTS:
            name = FIELDS[i]
            span[name] = list(span[name] or ())
        return span  # type: ignore[return-value]
