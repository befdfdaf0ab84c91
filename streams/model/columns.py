"""Span columns: a batch of spans as arrays, the form every stage of the worker reads.

A span batch is decoded once (streams.model.column_codec) into `SpanColumns`: ids, times, kinds
and statuses as numpy arrays, every text as an index into the batch's string dictionary, and
attribute maps flattened into `AttributeColumns`. Stages work on the arrays (otel_traces is
built from them without a Python object per span); `spans()` gives span dicts for the stages
that still hold spans one by one.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from operator import itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.model.span import SPAN_KINDS, STATUS_CODES, AttributeValue, Span

U8 = npt.NDArray[np.uint8]
U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]

# Attribute value types (AttributeColumns.types), as schemas/avro/span_columns.avsc names them.
NULL, BOOLEAN, LONG, DOUBLE, STRING, EXTRA = range(6)

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
_HEX = np.array([b"%02x" % i for i in range(256)], dtype="S2")

EventRow = tuple[int, int, str, dict[str, AttributeValue]]
"""(span index, time_unix_nano, name, attributes) of one span event."""
LinkRow = tuple[int, str, str, str, dict[str, AttributeValue]]
"""(span index, trace_id, span_id, trace_state, attributes) of one span link."""


def hex_ids(raw: U8) -> bytes:
    """Raw ids (n x k bytes) as their lowercase hex, 2k ASCII bytes each, concatenated."""
    return bytes(_HEX[raw].tobytes())


def hex_strings(raw: U8) -> list[str]:
    """Raw ids (n x k bytes) as lowercase hex strings."""
    width = 2 * raw.shape[1]
    text = hex_ids(raw).decode("ascii")
    return [text[i : i + width] for i in range(0, len(text), width)]


def _gather(offsets: U32, rows: npt.NDArray[np.intp]) -> tuple[U32, npt.NDArray[np.intp]]:
    """The offsets of the ranges `rows` of a flattened column, and the positions they cover."""
    starts = offsets[:-1][rows].astype(np.intp)
    counts = (offsets[1:][rows] - offsets[:-1][rows]).astype(np.intp)
    new_offsets = np.zeros(len(rows) + 1, dtype=np.uint32)
    np.cumsum(counts, out=new_offsets[1:])
    total = int(new_offsets[-1])
    positions = np.arange(total, dtype=np.intp) + np.repeat(
        starts - new_offsets[:-1].astype(np.intp), counts
    )
    return new_offsets, positions


@dataclass(frozen=True)
class AttributeColumns:
    """Attribute maps flattened: map i holds entries offsets[i]:offsets[i+1]."""

    offsets: U32
    keys: U32
    types: U8
    values: I64
    extras: list[Any] = field(default_factory=list)

    @property
    def maps(self) -> int:
        """How many maps these columns hold."""
        return len(self.offsets) - 1

    @property
    def counts(self) -> npt.NDArray[np.intp]:
        """Entries per map."""
        return np.diff(self.offsets).astype(np.intp)

    def select(self, rows: npt.NDArray[np.intp]) -> AttributeColumns:
        """The maps `rows`, in that order (extras shared)."""
        offsets, positions = _gather(self.offsets, rows)
        return AttributeColumns(
            offsets, self.keys[positions], self.types[positions], self.values[positions],
            self.extras,
        )  # fmt: skip

    def python_values(self, strings: Sequence[str]) -> list[AttributeValue]:
        """Every entry's value as the Python value a decoded span carries."""
        types = self.types
        values = self.values
        out = np.empty(len(types), dtype=object)
        for kind in np.unique(types).tolist():
            mask = types == kind
            chosen = values[mask]
            if kind == STRING:
                out[mask] = np.array(strings, dtype=object)[chosen]
            elif kind == LONG:
                out[mask] = chosen.astype(object)
            elif kind == DOUBLE:
                out[mask] = chosen.view(np.float64).astype(object)
            elif kind == BOOLEAN:
                out[mask] = (chosen != 0).astype(object)
            elif kind == EXTRA:
                # One by one: numpy would turn a list of equal-length arrays into a 2-D array.
                for at, extra in zip(np.flatnonzero(mask).tolist(), chosen.tolist(), strict=True):
                    out[at] = self.extras[extra]
        result: list[AttributeValue] = out.tolist()
        return result

    def dicts(self, strings: Sequence[str]) -> list[dict[str, AttributeValue]]:
        """Every map as a dict."""
        if not len(self.keys):
            return [{} for _ in range(self.maps)]
        keys = list(itemgetter(*self.keys.tolist())(strings)) if len(self.keys) > 1 else [
            strings[int(self.keys[0])]
        ]
        values = self.python_values(strings)
        bounds = self.offsets.tolist()
        return [
            dict(zip(keys[a:b], values[a:b], strict=True))
            for a, b in pairwise(bounds)
        ]

    def dicts_of(
        self, strings: Sequence[str], wanted: Collection[str]
    ) -> list[dict[str, AttributeValue]]:
        """Every map as a dict of its `wanted` keys only; the maps without any share one empty
        dict, so the result is read-only. A few keys of many maps cost numpy passes, not a dict
        per map."""
        empty: dict[str, AttributeValue] = {}
        out = [empty] * self.maps
        wanted_ids = [i for i, text in enumerate(strings) if text in wanted]
        if not wanted_ids or not len(self.keys):
            return out
        hits = np.flatnonzero(np.isin(self.keys, wanted_ids))
        if not len(hits):
            return out
        owners = np.searchsorted(self.offsets, hits, side="right") - 1
        chosen = AttributeColumns(
            self.offsets[:1], self.keys[hits], self.types[hits], self.values[hits], self.extras
        )
        values = chosen.python_values(strings)
        for owner, key, value in zip(owners.tolist(), chosen.keys.tolist(), values, strict=True):
            found = out[owner]
            if found is empty:
                found = out[owner] = {}
            found[strings[key]] = value
        return out


def _remapped(attributes: AttributeColumns, lookup: npt.NDArray[np.intp]) -> AttributeColumns:
    """The columns with every string index (keys, string values) passed through `lookup`, and
    only the extras they use."""
    values = attributes.values.copy()
    is_text = attributes.types == STRING
    values[is_text] = lookup[values[is_text]]
    extras = attributes.extras
    is_extra = attributes.types == EXTRA
    if len(extras) and is_extra.sum() < len(extras):
        used = values[is_extra]
        extras = [extras[i] for i in used.tolist()]
        values[is_extra] = np.arange(len(used))
    return AttributeColumns(
        attributes.offsets, lookup[attributes.keys].astype(np.uint32), attributes.types, values,
        extras,
    )  # fmt: skip


def concat_attributes(parts: Sequence[tuple[AttributeColumns, int]]) -> AttributeColumns:
    """Attribute columns of several batches as one; each part comes with the offset of its
    batch's strings in the combined dictionary."""
    offsets = [np.zeros(1, dtype=np.uint32)]
    keys, types, values = [], [], []
    extras: list[Any] = []
    base = 0
    for columns, string_base in parts:
        offsets.append(columns.offsets[1:] + np.uint32(base))
        base += int(columns.offsets[-1])
        keys.append(columns.keys + np.uint32(string_base))
        shifted = columns.values.copy()
        shifted[columns.types == STRING] += string_base
        shifted[columns.types == EXTRA] += len(extras)
        values.append(shifted)
        types.append(columns.types)
        extras.extend(columns.extras)
    return AttributeColumns(
        np.concatenate(offsets), np.concatenate(keys), np.concatenate(types),
        np.concatenate(values), extras,
    )  # fmt: skip


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
        attributes=_remapped(columns.attributes, lookup),
        resource=resource,
        resources=_remapped(resources, lookup),
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
