"""Attribute text golden cases: each input value and the exact text the OpenTelemetry Collector's
ClickHouse exporter stores for it (pdata `Value.AsString`, Collector 0.165 / pdata v1.71.0).

The expected texts are re-derived from pdata's rules (pcommon/value.go: `AsString`,
`float64AsString`, `marshalJSONNoHTMLEscape`; Go's encoding/json for arrays and maps), see
streams/model/attribute_text.py; pdata's own TestValueAsString cases are among them. Every case
also equals pdata's own output: `python -m bench.attribute_text` (Go, not in CI)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from streams.model.attribute_text import attribute_text, double_text

NAN = math.nan
INF = math.inf

# (id, input, exact text). Inputs are what a decoded span carries (maps as dicts: OTLP kvlists).
GOLDEN: list[tuple[str, Any, str]] = [
    # Strings are written as they are, whatever they hold.
    ("string", "GET /cart", "GET /cart"),
    ("string.empty", "", ""),
    ("string.raw", 'ü <&> "q"\n\\', 'ü <&> "q"\n\\'),
    # An empty value is the empty text.
    ("empty", None, ""),
    ("bool.true", True, "true"),
    ("bool.false", False, "false"),
    # Ints: strconv.FormatInt, base 10.
    ("int", 42, "42"),
    ("int.min", -(2**63), "-9223372036854775808"),
    ("int.max", 2**63 - 1, "9223372036854775807"),
    # Doubles: a JavaScript number's text. Whole numbers have no fraction ...
    ("double.whole", 2.0, "2"),
    ("double.zero", 0.0, "0"),
    ("double.negative_zero", -0.0, "-0"),
    ("double.fraction", 0.25, "0.25"),
    ("double.negative", -2.5, "-2.5"),
    ("double.shortest", 0.1 + 0.2, "0.30000000000000004"),
    ("double.pdata", 1.61803399, "1.61803399"),
    # ... plain decimals from 1e-6 up to (not including) 1e21 ...
    ("double.1.5e20", 1.5e20, "150000000000000000000"),
    ("double.1e16", 1e16, "10000000000000000"),
    ("double.large_shortest", 123456789012345678.0, "123456789012345680"),
    ("double.below_1e21", 9.99e20, "999000000000000000000"),
    ("double.1e-6", 1e-6, "0.000001"),
    ("double.1.5e-5", 1.5e-5, "0.000015"),
    # ... exponent notation outside, with no zero padding of a negative exponent.
    ("double.1e-7", 1e-7, "1e-7"),
    ("double.pdata_small", 0.000000009, "9e-9"),
    ("double.negative_small", -1.5e-7, "-1.5e-7"),
    ("double.1e-10", 1e-10, "1e-10"),
    ("double.1e21", 1e21, "1e+21"),
    ("double.max", 1.7976931348623157e308, "1.7976931348623157e+308"),
    ("double.min_subnormal", 5e-324, "5e-324"),
    ("double.nan", NAN, "NaN"),
    ("double.inf", INF, "Infinity"),
    ("double.negative_inf", -INF, "-Infinity"),
    # Bytes: standard base64 with padding.
    ("bytes", b"\x00\xffab", "AP9hYg=="),
    ("bytes.one", b"\xff", "/w=="),
    ("bytes.empty", b"", ""),
    # Arrays: compact JSON, numbers as above, strings escaped only where JSON must.
    ("array.doubles", [1.0, 2.5], "[1,2.5]"),
    ("array.non_ascii", ["ü", "日本", "😀"], '["ü","日本","😀"]'),
    ("array.html", ["<a href=x>", "&"], '["<a href=x>","&"]'),
    ("array.empty", [], "[]"),
    ("array.mixed", [None, True, -3, "x", 0.5], '[null,true,-3,"x",0.5]'),
    ("array.numbers", [1.5e20, 1e-7, -0.0, 1e21], "[150000000000000000000,1e-7,-0,1e+21]"),
    # Bytes inside an array are base64 text; empty bytes are null (AsRaw gives a nil slice).
    ("array.bytes", [b"\x00\x01", b""], '["AAE=",null]'),
    (
        "array.escapes",
        ['"q"\\', "\n\t\b\f\r\x01\x1f\x7f", "\u2028\u2029"],
        '["\\"q\\"\\\\","\\n\\t\\b\\f\\r\\u0001\\u001f\x7f","\\u2028\\u2029"]',
    ),
    # Go's encoding/json cannot write NaN or an infinity: the whole text is empty.
    ("array.nan", [1.0, NAN], ""),
    ("array.inf", [-INF], ""),
    # Maps (kvlists): keys sorted by code point, values by the array rules.
    ("map.empty", {}, "{}"),
    ("map.sorted", {"z": -3, "a": ["é"], "n": None}, '{"a":["é"],"n":null,"z":-3}'),
    ("map.nested", {"b": 2.0, "a": {"y": 1e-7, "x": b"\x01"}}, '{"a":{"x":"AQ==","y":1e-7},"b":2}'),
    ("map.key_order", {"é": 1, "e": 2, "Z": 3}, '{"Z":3,"e":2,"é":1}'),
    ("map.html", {"<k>": "a&b"}, '{"<k>":"a&b"}'),
    ("map.nan", {"k": NAN}, ""),
    # Arrays of arrays and maps nest the same way.
    ("array.nested", [[1, 2.0], {"a": True}, []], '[[1,2],{"a":true},[]]'),
]


@pytest.mark.parametrize(("value", "text"), [pytest.param(v, t, id=i) for i, v, t in GOLDEN])
def test_attribute_text_is_the_collectors(value: Any, text: str) -> None:
    assert attribute_text(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [pytest.param(v, t, id=i) for i, v, t in GOLDEN if isinstance(v, float)],
)
def test_double_text_is_the_collectors(value: float, text: str) -> None:
    assert double_text(value) == text
