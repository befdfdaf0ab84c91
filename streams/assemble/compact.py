"""Held spans in compact form: tuples that share repeated strings and resource maps.

A decoded span dict costs ~1.7 KiB held; most of it is the dict itself and strings that repeat
across spans (trace id, service, operation, resource attributes). A tuple in fixed field order,
with those parts interned or shared, halves that, and converting back costs well under 1 µs.
Used as the TraceBuffer's span codec (it only needs encode/decode).
"""

from __future__ import annotations

import sys
from typing import Any

from streams.model.span import Span

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

    def decode(self, data: Any) -> Span:
        """The span dict of a compact form (lists fresh, shared maps shared)."""
        span: dict[str, Any] = dict(zip(FIELDS, data, strict=True))
        for i in _LISTS:
            name = FIELDS[i]
            span[name] = list(span[name] or ())
        return span  # type: ignore[return-value]
