"""Held spans in compact form: span rows (streams.model.span.SpanRow) that share repeated
strings and resource maps.

A decoded span dict costs ~1.7 KiB held; most of it is the dict itself and strings that repeat
across spans (trace id, service, operation, resource attributes). A row in fixed field order,
with those parts interned or shared, halves that, and the analyses read it as it is: no dict per
span at emission either. Used as the TraceBuffer's span codec.
"""

from __future__ import annotations

import sys
from typing import Any

from streams.assemble.edges import GRAPH_ATTRIBUTES
from streams.model.columns import SpanColumns, hex_strings
from streams.model.span import (
    RESOURCE_ATTRIBUTES,
    SPAN_FIELDS,
    SPAN_KINDS,
    STATUS_CODES,
    Span,
    SpanRow,
    span_row,
)

_INTERNED = tuple(
    SPAN_FIELDS.index(name)
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
# encode_columns builds the tuple in this order.
assert SPAN_FIELDS == (
    "trace_id", "span_id", "parent_span_id", "trace_state", "name", "kind",
    "start_time_unix_nano", "end_time_unix_nano", "status_code", "status_message",
    "service_name", "resource_attributes", "scope_name", "scope_version", "attributes",
    "events", "links", "source_format",
)  # fmt: skip
_MAX_SHARED_RESOURCES = 10_000


class CompactSpans:
    """Encodes spans as compact rows; equal resource maps are held once.

    Unless `whole`, rows built from columns keep only what the analyses read: of the span
    attributes those the service-graph pairing reads (GRAPH_ATTRIBUTES, None when there are
    none), no resource attributes (None), no events. That is enough for a trace record without
    spans, and saves a dict per span; a row that holds no dict is one the garbage collector
    stops scanning (CPython untracks a tuple of atoms; any dict, even an empty one, keeps it
    tracked, and held rows are most of what a gen-1 collection scans). Spans that leave the
    stage whole (records with spans, spans tail sampling keeps) need `whole`."""

    def __init__(self, whole: bool = True) -> None:
        self.whole = whole
        self._resources: dict[tuple[Any, ...], dict[str, Any]] = {}

    def _shared(self, attributes: dict[str, Any]) -> dict[str, Any]:
        # Resource maps, and the few graph attributes of slim rows, repeat across many spans.
        try:
            key = tuple(attributes.items())
            shared = self._resources.get(key)
        except TypeError:  # an unhashable (array) value: keep this one as it is
            return attributes
        if shared is None:
            if len(self._resources) >= _MAX_SHARED_RESOURCES:
                self._resources.clear()
            self._resources[key] = shared = attributes
        return shared

    def encode(self, record: Span) -> SpanRow:
        """The compact row of one span dict."""
        values = list(span_row(record))
        for i in _INTERNED:
            values[i] = sys.intern(values[i])
        values[RESOURCE_ATTRIBUTES] = self._shared(values[RESOURCE_ATTRIBUTES])
        return tuple(values)

    def encode_columns(self, columns: SpanColumns) -> list[SpanRow]:
        """The compact form of every span of a batch, built from its columns (no span dict)."""
        n = len(columns)
        if not n:
            return []
        strings = [sys.intern(s) for s in columns.strings]
        if self.whole:
            resource_maps = [self._shared(m) for m in columns.resources.dicts(strings)]
            resources = [resource_maps[r] for r in columns.resource.tolist()]
        else:
            resources = [None] * n
        events: list[list[Any] | None] = [None] * n
        for index, when, name, attrs in columns.events if self.whole else ():
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
                resources,
                text("scope_name"),
                text("scope_version"),
                (
                    columns.attributes.dicts(strings)
                    if self.whole
                    else [
                        self._shared(m) if m else None
                        for m in columns.attributes.dicts_of(strings, GRAPH_ATTRIBUTES)
                    ]
                ),
                events,
                links,
                text("source_format"),
                strict=True,
            )
        )
