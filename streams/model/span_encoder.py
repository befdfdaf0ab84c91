"""The Span record's Avro body, encoded by hand (the single-span messages and the spans inside
trace records), the Avro primitives it is made of (`avro_long`, `avro_string`, `avro_id`,
`avro_boolean`; the trace record's encoder uses them too; `avro_longs` for many longs at once),
and an Avro array of already-encoded bodies."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from streams.errors import SchemaError
from streams.model.codec import AvroCodec
from streams.model.span import SPAN_KINDS, STATUS_CODES, Span

# ---------------------------------------------------------------------------------------------
# Avro encoding of the Span record, by hand: fastavro spends most of its ~10 µs per span
# resolving the seven-branch attribute union generically. Anything this encoder does not
# recognise raises, and the caller falls back to fastavro, which also produces the error.

_KIND_INDEX = {kind: bytes([i << 1]) for i, kind in enumerate(SPAN_KINDS)}
_STATUS_INDEX = {code: bytes([i << 1]) for i, code in enumerate(STATUS_CODES)}
# Zigzag varints of 0..8191 precomputed: lengths, counts and small ints hit this table.
_SMALL_LIMIT = 8192
_PACK_DOUBLE = struct.Struct("<d").pack
_LONG_MIN = -(1 << 63)
_LONG_MAX = (1 << 63) - 1


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = [_varint((i << 1) ^ (i >> 63)) for i in range(_SMALL_LIMIT)]
# Two varint groups (14 bits) with their continuation bits set, for the low part of big longs.
_LOW14 = [bytes([(i & 0x7F) | 0x80, (i >> 7) | 0x80]) for i in range(1 << 14)]
# One varint group: the last (no continuation bit) and a middle one.
_BYTE = [bytes([i]) for i in range(0x80)]
_CONT = [bytes([i | 0x80]) for i in range(0x80)]
# Varints of `zigzag >> 28` seen so far: nanosecond timestamps share these for ~134 ms.
_HIGH: dict[int, bytes] = {}
_HIGH_MAX = 4096


def _long(n: int) -> bytes:
    """The Avro (zigzag varint) encoding of a long."""
    if 0 <= n < _SMALL_LIMIT:
        return _SMALL[n]
    if not _LONG_MIN <= n <= _LONG_MAX:
        raise OverflowError(f"{n} does not fit an Avro long")
    z = (n << 1) ^ (n >> 63)
    high = z >> 28
    if not high:
        # Durations in nanoseconds (up to ~134 ms) and negative values: tables, no loop.
        if z < 1 << 14:
            return _BYTE[z] if z < 0x80 else _CONT[z & 0x7F] + _BYTE[z >> 7]
        if z < 1 << 21:
            return _LOW14[z & 0x3FFF] + _BYTE[z >> 14]
        return _LOW14[z & 0x3FFF] + _CONT[(z >> 14) & 0x7F] + _BYTE[z >> 21]
    # Timestamps dominate: table lookups for the low 28 bits, a cache for the rest.
    cached = _HIGH.get(high)
    if cached is None:
        if len(_HIGH) >= _HIGH_MAX:
            _HIGH.clear()
        cached = _HIGH[high] = _varint(high)
    return _LOW14[z & 0x3FFF] + _LOW14[(z >> 14) & 0x3FFF] + cached


# Length-prefixed UTF-8 of strings seen before: names, services, attribute keys and most
# attribute values repeat endlessly; trace and span ids never do and skip the cache.
_STRINGS: dict[str, bytes] = {}
_STRINGS_MAX = 16_384
_STRING_CACHE_MAX_BYTES = 256


def _string_miss(value: str) -> bytes:
    raw = value.encode()
    n = len(raw)
    encoded = (_SMALL[n] if n < _SMALL_LIMIT else _long(n)) + raw
    if n <= _STRING_CACHE_MAX_BYTES:
        if len(_STRINGS) >= _STRINGS_MAX:
            _STRINGS.clear()
        _STRINGS[value] = encoded
    return encoded


_string_hit = _STRINGS.get


def _id(value: str) -> bytes:
    raw = value.encode()
    n = len(raw)
    return (_SMALL[n] if n < _SMALL_LIMIT else _long(n)) + raw


# Union branch indexes of the attribute value type: null, boolean, long, double, string,
# bytes, array (the array's items use the same first six).
_NULL = b"\x00"
_TRUE = b"\x02\x01"
_FALSE = b"\x02\x00"
_LONG_TAG = b"\x04"
_DOUBLE_TAG = b"\x06"
_STRING_TAG = b"\x08"
_BYTES_TAG = b"\x0a"
_ARRAY_TAG = b"\x0c"


def _scalar(out: bytearray, value: Any) -> None:
    kind = type(value)
    if kind is str:
        out += _STRING_TAG
        out += _string_hit(value) or _string_miss(value)
    elif kind is int:
        out += _LONG_TAG
        out += _long(value)
    elif kind is bool:
        out += _TRUE if value else _FALSE
    elif kind is float:
        out += _DOUBLE_TAG
        out += _PACK_DOUBLE(value)
    elif value is None:
        out += _NULL
    elif kind is bytes:
        out += _BYTES_TAG
        out += _long(len(value))
        out += value
    else:
        raise TypeError(f"no fast path for {kind.__name__}")


def _attributes(out: bytearray, attributes: dict[str, Any]) -> None:
    if not attributes:
        out += b"\x00"
        return
    n = len(attributes)
    out += _SMALL[n] if n < _SMALL_LIMIT else _long(n)
    for key, value in attributes.items():
        out += _string_hit(key) or _string_miss(key)
        kind = type(value)
        if kind is str:
            out += _STRING_TAG
            out += _string_hit(value) or _string_miss(value)
        elif kind is list or kind is tuple:
            out += _ARRAY_TAG
            if value:
                out += _long(len(value))
                for item in value:
                    _scalar(out, item)
            out += b"\x00"
        else:
            _scalar(out, value)
    out += b"\x00"


def encode_span_fast(span: Span) -> bytes:
    """Schemaless Avro bytes of a span exactly as fastavro writes them; raises on anything odd."""
    hit = _string_hit
    miss = _string_miss
    out = bytearray(_id(span["trace_id"]))
    out += _id(span["span_id"])
    out += _id(span["parent_span_id"])
    value = span["trace_state"]
    out += hit(value) or miss(value)
    value = span["name"]
    out += hit(value) or miss(value)
    out += _KIND_INDEX[span["kind"]]
    out += _long(span["start_time_unix_nano"])
    out += _long(span["end_time_unix_nano"])
    out += _STATUS_INDEX[span["status_code"]]
    value = span["status_message"]
    out += hit(value) or miss(value)
    value = span["service_name"]
    out += hit(value) or miss(value)
    _attributes(out, span["resource_attributes"])
    value = span["scope_name"]
    out += hit(value) or miss(value)
    value = span["scope_version"]
    out += hit(value) or miss(value)
    _attributes(out, span["attributes"])
    events = span["events"]
    if events:
        out += _long(len(events))
        for event in events:
            out += _long(event["time_unix_nano"])
            value = event["name"]
            out += hit(value) or miss(value)
            _attributes(out, event["attributes"])
    out += b"\x00"
    links = span["links"]
    if links:
        out += _long(len(links))
        for link in links:
            out += _id(link["trace_id"])
            out += _id(link["span_id"])
            value = link["trace_state"]
            out += hit(value) or miss(value)
            _attributes(out, link["attributes"])
    out += b"\x00"
    value = span["source_format"]
    out += hit(value) or miss(value)
    return bytes(out)


class SpanEncoder:
    """Span -> Avro bytes: the fast encoder, falling back to fastavro for anything unusual."""

    def __init__(self, codec: AvroCodec | None = None) -> None:
        self.codec = codec or AvroCodec("span")

    def encode(self, span: Span) -> bytes:
        """Schemaless Avro bytes; SchemaError when the span does not match the schema."""
        try:
            return encode_span_fast(span)
        except (KeyError, TypeError, AttributeError, ValueError, OverflowError):
            pass
        try:
            # fastavro fills missing fields from schema defaults and names what is wrong.
            return self.codec.encode(span)
        except (KeyError, TypeError, AttributeError, ValueError, OverflowError) as err:
            raise SchemaError(f"span does not match the span schema: {err}") from err


avro_long = _long
avro_id = _id


def avro_string(value: str) -> bytes:
    """The Avro encoding of a string that may repeat (names, services): length-prefixed UTF-8,
    cached for short ones. Ids, which never repeat, go through `avro_id` (no cache)."""
    return _string_hit(value) or _string_miss(value)


def avro_boolean(value: bool) -> bytes:
    """The Avro encoding of a boolean (TypeError for anything else, as fastavro's check)."""
    if value is True:
        return b"\x01"
    if value is False:
        return b"\x00"
    raise TypeError(f"not a boolean: {type(value).__name__}")


def avro_id_array(ids: Sequence[str]) -> bytes:
    """An Avro array of id strings, as `avro_array([avro_id(i) for i in ids])` writes it; ids
    of one ASCII length under 64 (span ids: 16 hex digits) in one join."""
    if not ids:
        return b"\x00"
    width = len(ids[0])
    joined = "".join(ids)
    if width >= 64 or len(joined) != width * len(ids) or not joined.isascii():
        return avro_array([_id(i) for i in ids])
    prefix = chr(width << 1)  # the zigzag varint of a length under 64 is one byte
    return _long(len(ids)) + (prefix + prefix.join(ids)).encode() + b"\x00"


VECTOR_LONGS_MIN = 64
"""Fewer longs than this are encoded one by one: numpy's fixed cost per call is ~10 µs."""


def avro_longs(values: Sequence[int]) -> list[bytes]:
    """`avro_long` of each value, computed as arrays: ~0.1 µs per nanosecond timestamp instead
    of ~0.45. TypeError for a value that is not an int within a long (as `avro_long` raises)."""
    if len(values) < VECTOR_LONGS_MIN:
        return [_long(v) for v in values]
    longs = np.array(values)
    if longs.dtype != np.int64:
        # Floats, strings, ints past a long: numpy would coerce them, fastavro refuses them.
        raise TypeError(f"not all Avro longs: {longs.dtype}")
    zigzag = ((longs << 1) ^ (longs >> 63)).view(np.uint64)
    groups = np.zeros((len(longs), 10), dtype=np.uint8)
    rest = zigzag.copy()
    for i in range(10):
        low = (rest & 0x7F).astype(np.uint8)
        rest >>= np.uint64(7)
        more = rest != 0
        groups[:, i] = low | (more.astype(np.uint8) << 7)
        if not more.any():
            break
    # A varint's last byte is non-zero unless the long is 0: `S10` strips only the padding.
    encoded: list[bytes] = groups.view("S10").ravel().tolist()
    for i in np.flatnonzero(zigzag == 0).tolist():
        encoded[i] = b"\x00"
    return encoded


def avro_array(bodies: Sequence[bytes]) -> bytes:
    """An Avro array (one block) of already-encoded bodies of one record type: a span batch's
    value, the spans inside a trace record, a trace record batch's value."""
    if not bodies:
        return b"\x00"
    return _long(len(bodies)) + b"".join(bodies) + b"\x00"
