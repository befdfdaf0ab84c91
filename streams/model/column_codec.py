"""Span columns on the wire: span dicts -> SpanColumns -> Avro (schemas/avro/span_columns.avsc)
and back.

Decoding reads about twenty `bytes` fields and the string dictionary with fastavro and wraps
the packed arrays with numpy without copying: the cost is per batch and per distinct string,
not per span. Encoding (the producer's side) is one Python pass over the spans' fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from streams.errors import DecodeError, SchemaError
from streams.model.codec import AvroCodec
from streams.model.columns import (
    BOOLEAN,
    DOUBLE,
    EXTRA,
    LONG,
    NULL,
    STRING,
    TEXT_COLUMNS,
    AttributeColumns,
    EventRow,
    LinkRow,
    SpanColumns,
    compacted,
)
from streams.model.span import SPAN_KINDS, STATUS_CODES, AttributeValue, Span, optional_fields

SPAN_COLUMNS_SCHEMA = "span_columns"
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


def columns_from_spans(spans: Iterable[Span]) -> SpanColumns:
    """Span dicts as one batch of columns; SchemaError when a span does not fit the schema."""
    builder = SpanColumnsBuilder()
    add = builder.add
    for span in spans:
        add(span)
    return builder.build()


def _attributes_wire(columns: AttributeColumns) -> dict[str, Any]:
    return {
        "offsets": columns.offsets.astype("<u4").tobytes(),
        "keys": columns.keys.astype("<u4").tobytes(),
        "types": columns.types.tobytes(),
        "values": columns.values.astype("<i8").tobytes(),
        "extras": columns.extras,
    }


def _array(raw: bytes, dtype: str, count: int, what: str) -> Any:
    width = np.dtype(dtype).itemsize
    if len(raw) != width * count:
        raise DecodeError(
            "invalid-columns", f"{what} has {len(raw)} bytes, not {count} x {width}"
        )
    return np.frombuffer(raw, dtype=dtype)


def _attributes_columns(record: dict[str, Any], maps: int, strings: int, what: str) -> Any:
    if maps < 0:
        raise DecodeError("invalid-columns", f"{what}.offsets is empty (it starts with 0)")
    offsets = _array(record["offsets"], "<u4", maps + 1, f"{what}.offsets")
    entries = int(offsets[-1])
    if offsets[0] != 0 or np.any(np.diff(offsets.astype(np.int64)) < 0):
        raise DecodeError("invalid-columns", f"{what}.offsets are not increasing from 0")
    keys = _array(record["keys"], "<u4", entries, f"{what}.keys")
    types = _array(record["types"], "u1", entries, f"{what}.types")
    values = _array(record["values"], "<i8", entries, f"{what}.values")
    extras = record["extras"]
    if entries and (
        int(keys.max()) >= strings
        or int(types.max()) > EXTRA
        or np.any(values[types == STRING] >= strings)
        or np.any(values[types == STRING] < 0)
        or np.any(values[types == EXTRA] >= len(extras))
        or np.any(values[types == EXTRA] < 0)
    ):
        raise DecodeError("invalid-columns", f"{what} point outside the batch's dictionaries")
    return AttributeColumns(offsets, keys, types, values, extras)


class SpanColumnsCodec:
    """SpanColumns <-> Avro bytes (schemas/avro/span_columns.avsc and its released versions)."""

    def __init__(self) -> None:
        self.codec = AvroCodec(SPAN_COLUMNS_SCHEMA)
        self.fingerprint = self.codec.fingerprint
        self.headers = self.codec.headers

    def knows(self, fingerprint: str | None) -> bool:
        """Whether a message with this schema header is a span columns batch."""
        return self.codec.knows(fingerprint)

    def encode(self, columns: SpanColumns) -> bytes:
        """Schemaless Avro bytes of a batch (only the dictionary entries its spans use)."""
        columns = compacted(columns)
        record = {
            "count": len(columns),
            "strings": columns.strings,
            "trace_id": columns.trace_id.tobytes(),
            "span_id": columns.span_id.tobytes(),
            "parent_span_id": columns.parent_span_id.tobytes(),
            "start_time_unix_nano": columns.start_time_unix_nano.astype("<i8").tobytes(),
            "end_time_unix_nano": columns.end_time_unix_nano.astype("<i8").tobytes(),
            "kind": columns.kind.tobytes(),
            "status_code": columns.status_code.tobytes(),
            **{c: columns.text[c].astype("<u4").tobytes() for c in TEXT_COLUMNS},
            "attributes": _attributes_wire(columns.attributes),
            "resource": columns.resource.astype("<u4").tobytes(),
            "resources": _attributes_wire(columns.resources),
            "events": [
                {"span": e[0], "time_unix_nano": e[1], "name": e[2], "attributes": e[3]}
                for e in columns.events
            ],
            "links": [
                {"span": lk[0], "trace_id": lk[1], "span_id": lk[2], "trace_state": lk[3],
                 "attributes": lk[4]}
                for lk in columns.links
            ],
        }
        return self.codec.encode(record)

    def encode_chunks(
        self, columns: SpanColumns, max_bytes: int
    ) -> list[tuple[int, int, bytes]]:
        """A batch as messages of at most about `max_bytes` each (halved until they fit; one
        span always makes a message): (first span, end span, value) each."""
        chunks: list[tuple[int, int, bytes]] = []
        pending = [(0, len(columns))]
        while pending:
            start, stop = pending.pop()
            part = columns if (start, stop) == (0, len(columns)) else columns.select(
                np.arange(start, stop)
            )
            value = self.encode(part)
            if len(value) <= max_bytes or stop - start == 1:
                chunks.append((start, stop, value))
                continue
            middle = (start + stop) // 2
            pending += [(middle, stop), (start, middle)]
        return chunks

    def decode(self, data: bytes, fingerprint: str | None = None) -> SpanColumns:
        """A batch from Avro bytes; DecodeError when it cannot be read or its columns disagree."""
        record = self.codec.decode(data, fingerprint)
        try:
            return self._columns(record)
        except (ValueError, IndexError, TypeError, OverflowError) as err:
            # A disagreement the checks below did not name must still reach the DLQ, never
            # crash the span agent (which would take the same message again, for good).
            raise DecodeError("invalid-columns", f"{type(err).__name__}: {err}") from err

    def _columns(self, record: dict[str, Any]) -> SpanColumns:
        n = record["count"]
        if n < 0:
            raise DecodeError("invalid-columns", f"count {n} is negative")
        strings: list[str] = record["strings"]
        text = {c: _array(record[c], "<u4", n, c) for c in TEXT_COLUMNS}
        if n and max(int(t.max()) for t in text.values()) >= len(strings):
            raise DecodeError("invalid-columns", "a text column points outside `strings`")
        resources = record["resources"]
        resource_maps = len(resources["offsets"]) // 4 - 1
        resource = _array(record["resource"], "<u4", n, "resource")
        if n and int(resource.max()) >= resource_maps:
            raise DecodeError("invalid-columns", "a span's resource is outside `resources`")
        events = record["events"]
        links = record["links"]
        if any(not 0 <= e["span"] < n for e in events) or any(
            not 0 <= lk["span"] < n for lk in links
        ):
            raise DecodeError("invalid-columns", "an event or link names a span not in the batch")
        return SpanColumns(
            strings=strings,
            trace_id=_array(record["trace_id"], "u1", 16 * n, "trace_id").reshape(n, 16),
            span_id=_array(record["span_id"], "u1", 8 * n, "span_id").reshape(n, 8),
            parent_span_id=_array(record["parent_span_id"], "u1", 8 * n, "parent_span_id")
            .reshape(n, 8),
            start_time_unix_nano=_array(record["start_time_unix_nano"], "<i8", n, "start"),
            end_time_unix_nano=_array(record["end_time_unix_nano"], "<i8", n, "end"),
            kind=_array(record["kind"], "u1", n, "kind"),
            status_code=_array(record["status_code"], "u1", n, "status_code"),
            text=text,
            attributes=_attributes_columns(record["attributes"], n, len(strings), "attributes"),
            resource=resource,
            resources=_attributes_columns(resources, resource_maps, len(strings), "resources"),
            events=[(e["span"], e["time_unix_nano"], e["name"], e["attributes"]) for e in events],
            links=[
                (lk["span"], lk["trace_id"], lk["span_id"], lk["trace_state"], lk["attributes"])
                for lk in links
            ],
        )
