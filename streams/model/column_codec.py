"""Span columns on the wire: span dicts -> SpanColumns -> Avro (schemas/avro/span_columns.avsc)
and back.

Decoding reads about twenty `bytes` fields and the string dictionary with fastavro and wraps
the packed arrays with numpy without copying: the cost is per batch and per distinct string,
not per span. Encoding (the producer's side) is one Python pass over the spans' fields, in
`streams.model.column_builder`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from streams.errors import DecodeError
from streams.model.attribute_columns import EXTRA, STRING, AttributeColumns
from streams.model.codec import AvroCodec
from streams.model.column_builder import SpanColumnsBuilder
from streams.model.columns import TEXT_COLUMNS, SpanColumns, compacted
from streams.model.span import Span

SPAN_COLUMNS_SCHEMA = "span_columns"


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
