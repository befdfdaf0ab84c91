"""Attribute values as text, exactly as the OpenTelemetry Collector writes them into otel_traces.

The Collector's ClickHouse exporter stores every attribute as pdata's `Value.AsString()`
(open-telemetry/opentelemetry-collector-contrib exporter/clickhouseexporter/internal/util.go,
`AttributesToMap`; open-telemetry/opentelemetry-collector pdata/pcommon/value.go `AsString`,
pdata v1.71.0 = Collector 0.165; bench/attribute_text.py compares this module with it):

- a string is itself; an empty value is ""; a boolean is `true`/`false`; an int is decimal;
- bytes are standard base64 (with padding);
- a double is text as a JavaScript number (pdata's `float64AsString`, after Go's
  encoding/json): decimal notation without a fraction when whole (`2`, `150000000000000000000`),
  exponent notation below 1e-6 and from 1e21 on with no zero-padded exponent (`1e-7`,
  `1e+21`), `-0` for negative zero, `NaN`, `Infinity`, `-Infinity`;
- an array or a map is Go's encoding/json text of pdata's `AsRaw` (pcommon/value.go
  `marshalJSONNoHTMLEscape`): compact, map keys sorted, numbers as above, strings with
  `"` `\\` and control characters escaped (`\\b \\f \\n \\r \\t`, others `\\u00XX`) and U+2028 /
  U+2029 as `\\u2028` / `\\u2029`, non-ASCII and `<>&` as they are, bytes inside as base64
  (empty bytes as `null`: `ByteSlice.AsRaw` copies them into a nil slice); an array or map
  holding NaN or an infinity cannot be encoded, and the Collector stores "".
"""

from __future__ import annotations

import base64
import json
import math
from decimal import Decimal
from typing import Any

# Go's ES6 number text switches to exponent notation outside [1e-6, 1e21); Python's repr
# switches outside [1e-4, 1e16). Between the two the digits are re-laid as a plain decimal.
_PLAIN_LOW = 1e-6
_PLAIN_HIGH = 1e21
_NOT_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
# encoding/json escapes these two unconditionally (they end a JavaScript line).
_LINE_ENDS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029"})
_encode_string: Any = json.encoder.encode_basestring  # type: ignore[attr-defined]


class _NotEncodable(ValueError):
    """A NaN or an infinity inside an array or map: Go's encoding/json refuses it."""


def integer_text(number: int) -> str:
    """An int attribute as the Collector writes it (strconv.FormatInt base 10)."""
    return str(number)


def double_text(number: float) -> str:
    """A double attribute as the Collector writes it (pdata `float64AsString`)."""
    text = repr(number)
    if "e" in text:
        return _exponent_text(number, text)
    if text.endswith(".0"):
        return text[:-2]
    return _NOT_FINITE.get(text, text)


def _exponent_text(number: float, text: str) -> str:
    """`number`, which Python writes with an exponent (`text`), as Go's ES6 number text."""
    if _PLAIN_LOW <= abs(number) < _PLAIN_HIGH:
        # repr's digits are the shortest that round-trip, as Go's; only the layout differs.
        return format(Decimal(text), "f")
    mantissa, exponent = text.split("e")
    # Both pad the exponent to two digits; Go then drops the pad of a negative one.
    if exponent.startswith("-0"):
        exponent = "-" + exponent[2:]
    return f"{mantissa}e{exponent}"


def bytes_text(value: bytes) -> str:
    """A bytes attribute as the Collector writes it: standard base64."""
    return base64.b64encode(value).decode("ascii")


def attribute_text(value: Any) -> str:
    """Any attribute value (a decoded OTLP AnyValue: maps as dicts) as the Collector writes it:
    pdata `Value.AsString`, the rules in this module's docstring."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int):
        return integer_text(value)
    if isinstance(value, float):
        return double_text(value)
    if isinstance(value, bytes):
        return bytes_text(value)
    try:
        return _json(value)
    except _NotEncodable:
        return ""


def _json(value: Any) -> str:
    """`value` inside an array or map, as Go's encoding/json writes pdata's AsRaw of it."""
    if isinstance(value, str):
        return _json_string(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return integer_text(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotEncodable(value)
        return double_text(value)
    if isinstance(value, bytes):
        return f'"{bytes_text(value)}"' if value else "null"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_json(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(
            f"{_json_string(key)}:{_json(value[key])}" for key in sorted(value)
        ) + "}"  # fmt: skip
    raise TypeError(f"not an attribute value: {type(value).__name__}")


def _json_string(text: str) -> str:
    quoted: str = _encode_string(text)
    if "\u2028" in quoted or "\u2029" in quoted:
        return quoted.translate(_LINE_ENDS)
    return quoted
