"""Span dicts to SpanColumns: one Python pass over the spans' fields (the producer's side and
the bridges'), ids to raw bytes, names and attribute strings into the batch's dictionary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from streams.errors import SchemaError
from streams.model.attribute_columns import (
    BOOLEAN,
    DOUBLE,
    EXTRA,
    LONG,
    NULL,
    STRING,
    AttributeColumns,
)
from streams.model.columns import TEXT_COLUMNS, EventRow, LinkRow, SpanColumns
from streams.model.span import SPAN_KINDS, STATUS_CODES, AttributeValue, Span, optional_fields

_KIND = {kind: i for i, kind in enumerate(SPAN_KINDS)}
_STATUS = {code: i for i, code in enumerate(STATUS_CODES)}
_LONG_MIN = -(1 << 63)
_LONG_MAX = (1 << 63) - 1


class _Attributes:
    """Accumulates attribute maps for AttributeColumns."""

    def __init__(self, strings: dict[str, int]) -> None:
        self.strings = strings
        self.offsets = [0]
        self.keys: list[int] = []
        self.types: list[int] = []
        self.values: list[int] = []
        self.doubles: list[tuple[int, float]] = []
        self.extras: list[Any] = []

    def entries(
        self, attributes: dict[str, AttributeValue]
    ) -> tuple[list[int], list[int], list[int], list[tuple[int, float]], list[Any]]:
        """One map's entries, not yet added (SchemaError for a value no attribute can hold)."""
        intern = self.strings.setdefault
        strings = self.strings
        keys: list[int] = []
        types: list[int] = []
        values: list[int] = []
        doubles: list[tuple[int, float]] = []
        extras: list[Any] = []
        value: Any
        for key, value in attributes.items():
            keys.append(intern(key, len(strings)))
            cls = value.__class__
            if cls is str:
                types.append(STRING)
                values.append(intern(value, len(strings)))
            elif cls is int:
                if not _LONG_MIN <= value <= _LONG_MAX:
                    raise SchemaError(f"attribute {key!r}: {value} does not fit an Avro long")
                types.append(LONG)
                values.append(value)
            elif cls is bool:
                types.append(BOOLEAN)
                values.append(1 if value else 0)
            elif cls is float:
                types.append(DOUBLE)
                doubles.append((len(values), value))
                values.append(0)
            elif value is None:
                types.append(NULL)
                values.append(0)
            elif cls is bytes or cls is list or cls is tuple:
                types.append(EXTRA)
                values.append(len(self.extras) + len(extras))
                extras.append(list(value) if cls is tuple else value)
            else:
                raise SchemaError(f"attribute {key!r}: {cls.__name__} is not an attribute type")
        return keys, types, values, doubles, extras

    def add(
        self, entries: tuple[list[int], list[int], list[int], list[tuple[int, float]], list[Any]]
    ) -> None:
        """Append one map's entries (from `entries`)."""
        keys, types, values, doubles, extras = entries
        if doubles:
            base = len(self.values)
            self.doubles.extend((base + i, d) for i, d in doubles)
        self.keys += keys
        self.types += types
        self.values += values
        if extras:
            self.extras += extras
        self.offsets.append(len(self.keys))

    def columns(self) -> AttributeColumns:
        values = np.array(self.values, dtype=np.int64)
        if self.doubles:
            where, doubles = zip(*self.doubles, strict=True)
            values[list(where)] = np.array(doubles, dtype=np.float64).view(np.int64)
        return AttributeColumns(
            np.array(self.offsets, dtype=np.uint32),
            np.array(self.keys, dtype=np.uint32),
            np.array(self.types, dtype=np.uint8),
            values,
            self.extras,
        )


def _raw_id(value: str, width: int, what: str) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except (ValueError, TypeError) as err:
        raise SchemaError(f"{what} {value!r:.40} is not hex") from err
    if len(raw) != width:
        raise SchemaError(f"{what} {value!r:.40} is not {2 * width} hex characters")
    return raw


_ROOT = bytes(8)
_SPAN_FIELDS = Span.__annotations__.keys()


class SpanColumnsBuilder:
    """Spans added one at a time, built into one SpanColumns batch: span dicts (as
    schemas/avro/span.avsc decodes) with `add`, or a decoder's raw fields with `add_raw`. Each
    add is all or nothing: SchemaError leaves the builder as it was."""

    def __init__(self) -> None:
        self.strings: dict[str, int] = {}
        self._ids = bytearray()
        self._span_ids = bytearray()
        self._parents = bytearray()
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._kinds: list[int] = []
        self._statuses: list[int] = []
        self._text: dict[str, list[int]] = {column: [] for column in TEXT_COLUMNS}
        self._text_lists = [self._text[column] for column in TEXT_COLUMNS]
        self._attributes = _Attributes(self.strings)
        self._resources = _Attributes(self.strings)
        self._resource_index: dict[int, int] = {}
        # Held so that an id in _resource_index cannot be reused by another dict meanwhile.
        self._resource_maps: list[dict[str, AttributeValue]] = []
        self._resource_by_content: dict[tuple[Any, ...], int] = {}
        self._resource_of: list[int] = []
        self._events: list[EventRow] = []
        self._links: list[LinkRow] = []

    def __len__(self) -> int:
        return len(self._starts)

    def add_resource(self, resource: dict[str, AttributeValue]) -> int:
        """The index of a resource map for `add_raw`, kept once per distinct map: spans of one
        process share it, whether as one dict (the SDK) or as equal copies (OTLP conversions).
        SchemaError for a value no attribute can hold (nothing kept)."""
        shared = self._resource_index.get(id(resource))
        if shared is not None:
            return shared
        content: Any = None
        try:
            content = tuple(resource.items())
            shared = self._resource_by_content.get(content)
        except TypeError:  # an unhashable (array) value: this map stands alone
            content = None
        if shared is None:
            entries = self._resources.entries(resource)
            shared = len(self._resources.offsets) - 1
            self._resources.add(entries)
            if content is not None:
                self._resource_by_content[content] = shared
        self._resource_index[id(resource)] = shared
        self._resource_maps.append(resource)
        return shared

    def add(self, span: Span) -> None:
        """Add one span dict; SchemaError when it does not fit the span schema."""
        if span.keys() != _SPAN_FIELDS:
            # Optional fields left out take the schema's defaults, as fastavro's writer does.
            span = {**optional_fields(), **span}  # type: ignore[typeddict-item]
        try:
            trace_id = _raw_id(span["trace_id"], 16, "trace_id")
            span_id = _raw_id(span["span_id"], 8, "span_id")
            parent = span["parent_span_id"]
            parent_id = _raw_id(parent, 8, "parent_span_id") if parent else _ROOT
            kind, status = _KIND[span["kind"]], _STATUS[span["status_code"]]
            texts = [span[column] for column in TEXT_COLUMNS]  # type: ignore[literal-required]
            events = [
                (e["time_unix_nano"], e["name"], e.get("attributes") or {})
                for e in span["events"]
            ]
            links = [
                (lk["trace_id"], lk["span_id"], lk.get("trace_state", ""),
                 lk.get("attributes") or {})
                for lk in span["links"]
            ]
            self._append(
                trace_id, span_id, parent_id, span["start_time_unix_nano"],
                span["end_time_unix_nano"], kind, status, texts, span["attributes"],
                span["resource_attributes"], None, events, links,
            )  # fmt: skip
        except (KeyError, TypeError, AttributeError) as err:
            raise SchemaError(f"span does not match the span schema: {err!r}") from err

    def add_raw(
        self,
        trace_id: bytes,
        span_id: bytes,
        parent_span_id: bytes,
        start_time_unix_nano: int,
        end_time_unix_nano: int,
        kind: int,
        status_code: int,
        texts: Sequence[str],
        attributes: dict[str, AttributeValue],
        resource: int,
        events: Sequence[tuple[int, str, dict[str, AttributeValue]]] = (),
        links: Sequence[tuple[str, str, str, dict[str, AttributeValue]]] = (),
    ) -> None:
        """Add one span from a decoder's fields: raw ids (16, 8 and 8 bytes, zeros for a
        root's parent), enum numbers (validation rejects one outside SPAN_KINDS or
        STATUS_CODES), the TEXT_COLUMNS in order, `resource` from `add_resource`, events as
        (time, name, attributes) and links as (trace_id, span_id, trace_state, attributes)."""
        if len(trace_id) != 16 or len(span_id) != 8 or len(parent_span_id) != 8:
            raise SchemaError("raw ids must be 16, 8 and 8 bytes")
        if not (0 <= kind < 256 and 0 <= status_code < 256):
            raise SchemaError("kind and status code numbers must fit a byte")
        if not 0 <= resource < len(self._resources.offsets) - 1:
            raise SchemaError(f"resource {resource} was not added by add_resource")
        self._append(
            trace_id, span_id, parent_span_id, start_time_unix_nano, end_time_unix_nano, kind,
            status_code, texts, attributes, None, resource, events, links,
        )  # fmt: skip

    def _append(
        self,
        trace_id: bytes,
        span_id: bytes,
        parent_id: bytes,
        start: int,
        end: int,
        kind: int,
        status: int,
        texts: Sequence[str],
        attributes: dict[str, AttributeValue],
        resource: dict[str, AttributeValue] | None,
        shared: int | None,
        events: Sequence[tuple[int, str, dict[str, AttributeValue]]],
        links: Sequence[tuple[str, str, str, dict[str, AttributeValue]]],
    ) -> None:
        """Check the rest, then append: a span that fails leaves nothing behind."""
        if not (start.__class__ is int and end.__class__ is int):
            raise SchemaError("span times must be int unix nanoseconds")
        if not (_LONG_MIN <= start <= _LONG_MAX and _LONG_MIN <= end <= _LONG_MAX):
            raise SchemaError("span times must fit an int64")
        try:
            "".join(texts)  # TypeError unless every text is a str: one C call per span
        except TypeError:
            texts = ()
        if len(texts) != len(TEXT_COLUMNS):
            raise SchemaError("span names, services and other texts must be str")
        entries = self._attributes.entries(attributes)
        if shared is None:
            assert resource is not None
            shared = self.add_resource(resource)  # the last check: it keeps what it adds
        self._ids += trace_id
        self._span_ids += span_id
        self._parents += parent_id
        self._starts.append(start)
        self._ends.append(end)
        self._kinds.append(kind)
        self._statuses.append(status)
        intern = self.strings.setdefault
        strings = self.strings
        for column, text in zip(self._text_lists, texts):  # noqa: B905 (lengths checked)
            column.append(intern(text, len(strings)))
        self._attributes.add(entries)
        self._resource_of.append(shared)
        if events or links:
            index = len(self._starts) - 1
            self._events += [(index, *event) for event in events]
            self._links += [(index, *link) for link in links]

    def build(self) -> SpanColumns:
        """The spans added so far, as columns."""
        n = len(self)
        return SpanColumns(
            strings=list(self.strings),
            trace_id=np.frombuffer(bytes(self._ids), dtype=np.uint8).reshape(n, 16),
            span_id=np.frombuffer(bytes(self._span_ids), dtype=np.uint8).reshape(n, 8),
            parent_span_id=np.frombuffer(bytes(self._parents), dtype=np.uint8).reshape(n, 8),
            start_time_unix_nano=np.array(self._starts, dtype=np.int64),
            end_time_unix_nano=np.array(self._ends, dtype=np.int64),
            kind=np.array(self._kinds, dtype=np.uint8),
            status_code=np.array(self._statuses, dtype=np.uint8),
            text={c: np.array(v, dtype=np.uint32) for c, v in self._text.items()},
            attributes=self._attributes.columns(),
            resource=np.array(self._resource_of, dtype=np.uint32),
            resources=self._resources.columns(),
            events=self._events,
            links=self._links,
        )
