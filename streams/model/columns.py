"""Span columns: a batch of spans as arrays, the form every stage of the worker reads.

A span batch is decoded once (streams.model.column_codec) into `SpanColumns`: ids, times, kinds
and statuses as numpy arrays, every text as an index into the batch's string dictionary, and
attribute maps flattened into `AttributeColumns`. Stages work on the arrays (otel_traces is
built from them without a Python object per span); `spans()` gives span dicts for the stages
that still hold spans one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from operator import itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.model.attribute_columns import (
    EXTRA,
    I64,
    STRING,
    U8,
    U32,
    AttributeColumns,
    concat_attributes,
    remapped_attributes,
)
from streams.model.span import SPAN_KINDS, STATUS_CODES, AttributeValue, Span

TEXT_COLUMNS = (
    "name",
    "service_name",
    "trace_state",
    "status_message",
    "scope_name",
    "scope_version",
    "source_format",
)
"""The span's text fields, each a uint32 column of indexes into `SpanColumns.strings`."""

# Names of every uint8 code: one outside the enums reads as such and validation rejects it.
_KIND_NAMES = (*SPAN_KINDS, *(f"kind code {i}" for i in range(len(SPAN_KINDS), 256)))
_STATUS_NAMES = (*STATUS_CODES, *(f"status code {i}" for i in range(len(STATUS_CODES), 256)))

EventRow = tuple[int, int, str, dict[str, AttributeValue]]
"""(span index, time_unix_nano, name, attributes) of one span event."""
LinkRow = tuple[int, str, str, str, dict[str, AttributeValue]]
"""(span index, trace_id, span_id, trace_state, attributes) of one span link."""


def _hex_text(raw: U8) -> str:
    # bytes.hex in C: ~10 ns an id, against ~55 through a numpy table of hex pairs.
    return np.ascontiguousarray(raw).tobytes().hex()


def hex_ids(raw: U8) -> bytes:
    """Raw ids (n x k bytes) as their lowercase hex, 2k ASCII bytes each, concatenated."""
    return _hex_text(raw).encode("ascii")


def hex_strings(raw: U8) -> list[str]:
    """Raw ids (n x k bytes) as lowercase hex strings."""
    width = 2 * raw.shape[1]
    text = _hex_text(raw)
    return [text[i : i + width] for i in range(0, len(text), width)]


@dataclass(frozen=True)
class SpanColumns:
    """A batch of spans as columns (schemas/avro/span_columns.avsc, decoded)."""

    strings: list[str]
    trace_id: U8
    """count x 16 raw bytes"""
    span_id: U8
    """count x 8"""
    parent_span_id: U8
    """count x 8, zeros for a root span"""
    start_time_unix_nano: I64
    end_time_unix_nano: I64
    kind: U8
    """index into SPAN_KINDS"""
    status_code: U8
    """index into STATUS_CODES"""
    text: dict[str, U32]
    """each of TEXT_COLUMNS: indexes into `strings`"""
    attributes: AttributeColumns
    resource: U32
    """each span's map in `resources`"""
    resources: AttributeColumns
    events: list[EventRow] = field(default_factory=list)
    links: list[LinkRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.start_time_unix_nano)

    def texts(self, column: str) -> list[str]:
        """One text column as strings."""
        indexes = self.text[column].tolist()
        if len(indexes) == 1:
            return [self.strings[indexes[0]]]
        return list(itemgetter(*indexes)(self.strings)) if indexes else []

    def is_root(self) -> npt.NDArray[np.bool_]:
        """Which spans have no parent."""
        roots: npt.NDArray[np.bool_] = np.logical_not(self.parent_span_id.any(axis=1))
        return roots

    def parent_ids(self) -> list[str]:
        """Parent span ids as hex, "" for a root span."""
        parents = hex_strings(self.parent_span_id)
        for i in np.flatnonzero(self.is_root()).tolist():
            parents[i] = ""
        return parents

    def spans(self) -> list[Span]:
        """Every span as a span dict (schemas/avro/span.avsc, decoded)."""
        n = len(self)
        if not n:
            return []
        trace_ids = hex_strings(self.trace_id)
        span_ids = hex_strings(self.span_id)
        parents = self.parent_ids()
        texts = {column: self.texts(column) for column in TEXT_COLUMNS}
        kinds = [_KIND_NAMES[k] for k in self.kind.tolist()]
        statuses = [_STATUS_NAMES[s] for s in self.status_code.tolist()]
        starts = self.start_time_unix_nano.tolist()
        ends = self.end_time_unix_nano.tolist()
        attributes = self.attributes.dicts(self.strings)
        resource_maps = self.resources.dicts(self.strings)
        resources = [resource_maps[r] for r in self.resource.tolist()]
        events: list[list[Any]] = [[] for _ in range(n)]
        for index, when, name, attrs in self.events:
            events[index].append({"time_unix_nano": when, "name": name, "attributes": attrs})
        links: list[list[Any]] = [[] for _ in range(n)]
        for index, trace_id, span_id, state, attrs in self.links:
            links[index].append(
                {"trace_id": trace_id, "span_id": span_id, "trace_state": state,
                 "attributes": attrs}
            )
        names = texts["name"]
        services = texts["service_name"]
        states = texts["trace_state"]
        messages = texts["status_message"]
        scopes = texts["scope_name"]
        versions = texts["scope_version"]
        formats = texts["source_format"]
        return [
            {
                "trace_id": trace_ids[i],
                "span_id": span_ids[i],
                "parent_span_id": parents[i],
                "trace_state": states[i],
                "name": names[i],
                "kind": kinds[i],
                "start_time_unix_nano": starts[i],
                "end_time_unix_nano": ends[i],
                "status_code": statuses[i],
                "status_message": messages[i],
                "service_name": services[i],
                "resource_attributes": resources[i],
                "scope_name": scopes[i],
                "scope_version": versions[i],
                "attributes": attributes[i],
                "events": events[i],
                "links": links[i],
                "source_format": formats[i],
            }
            for i in range(n)
        ]

    def select(self, rows: npt.NDArray[np.intp]) -> SpanColumns:
        """The spans `rows`, in that order (dictionary and resource maps shared)."""
        rows = np.asarray(rows, dtype=np.intp)
        renumber = np.full(len(self), -1, dtype=np.intp)
        renumber[rows] = np.arange(len(rows))
        new_index = renumber.tolist()
        return replace(
            self,
            trace_id=self.trace_id[rows],
            span_id=self.span_id[rows],
            parent_span_id=self.parent_span_id[rows],
            start_time_unix_nano=self.start_time_unix_nano[rows],
            end_time_unix_nano=self.end_time_unix_nano[rows],
            kind=self.kind[rows],
            status_code=self.status_code[rows],
            text={column: values[rows] for column, values in self.text.items()},
            attributes=self.attributes.select(rows),
            resource=self.resource[rows],
            events=[(new_index[e[0]], *e[1:]) for e in self.events if new_index[e[0]] >= 0],
            links=[(new_index[lk[0]], *lk[1:]) for lk in self.links if new_index[lk[0]] >= 0],
        )


def compacted(columns: SpanColumns) -> SpanColumns:
    """The batch with only the strings, resource maps and extras its spans use: a `select`ed
    or concatenated batch shares its sources' dictionaries, which must not go on the wire."""
    resource, resources = columns.resource, columns.resources
    used_maps = np.unique(resource)
    if len(used_maps) < resources.maps:
        resources = resources.select(used_maps.astype(np.intp))
        resource = np.searchsorted(used_maps, resource).astype(np.uint32)
    pieces = [columns.text[c] for c in TEXT_COLUMNS]
    for attributes in (columns.attributes, resources):
        pieces += [attributes.keys, attributes.values[attributes.types == STRING]]
    used = np.unique(np.concatenate([p.astype(np.int64) for p in pieces]))
    extras_used = (columns.attributes.types == EXTRA).sum() + (resources.types == EXTRA).sum()
    extras_held = len(columns.attributes.extras) + len(resources.extras)
    if len(used) == len(columns.strings) and extras_used == extras_held:
        return replace(columns, resource=resource, resources=resources)
    lookup = np.full(len(columns.strings), -1, dtype=np.intp)
    lookup[used] = np.arange(len(used))
    return replace(
        columns,
        strings=[columns.strings[i] for i in used.tolist()],
        text={c: lookup[v].astype(np.uint32) for c, v in columns.text.items()},
        attributes=remapped_attributes(columns.attributes, lookup),
        resource=resource,
        resources=remapped_attributes(resources, lookup),
    )


def concat_columns(batches: Sequence[SpanColumns]) -> SpanColumns:
    """Several span batches as one (their dictionaries appended, not merged)."""
    if len(batches) == 1:
        return batches[0]
    strings: list[str] = []
    string_bases = []
    resource_bases = []
    span_bases = []
    events: list[EventRow] = []
    links: list[LinkRow] = []
    resources = 0
    spans = 0
    for batch in batches:
        string_bases.append(len(strings))
        strings.extend(batch.strings)
        resource_bases.append(resources)
        resources += batch.resources.maps
        span_bases.append(spans)
        events.extend((e[0] + spans, *e[1:]) for e in batch.events)
        links.extend((lk[0] + spans, *lk[1:]) for lk in batch.links)
        spans += len(batch)

    def joined(name: str) -> Any:
        return np.concatenate([getattr(b, name) for b in batches])

    return SpanColumns(
        strings=strings,
        trace_id=joined("trace_id"),
        span_id=joined("span_id"),
        parent_span_id=joined("parent_span_id"),
        start_time_unix_nano=joined("start_time_unix_nano"),
        end_time_unix_nano=joined("end_time_unix_nano"),
        kind=joined("kind"),
        status_code=joined("status_code"),
        text={
            column: np.concatenate(
                [b.text[column] + np.uint32(base) for b, base in zip(batches, string_bases,
                                                                      strict=True)]
            )
            for column in TEXT_COLUMNS
        },
        attributes=concat_attributes(
            [(b.attributes, base) for b, base in zip(batches, string_bases, strict=True)]
        ),
        resource=np.concatenate(
            [b.resource + np.uint32(base) for b, base in zip(batches, resource_bases, strict=True)]
        ),
        resources=concat_attributes(
            [(b.resources, base) for b, base in zip(batches, string_bases, strict=True)]
        ),
        events=events,
        links=links,
    )
