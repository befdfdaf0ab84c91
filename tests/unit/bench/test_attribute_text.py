"""bench.attribute_text's inputs to the pdata oracle: every value type in the oracle's typed
form, and random values that cover every type, nested."""

from __future__ import annotations

import math
import random
from typing import Any

from bench.attribute_text import missing_go_line, oracle_input, random_doubles, random_value


def test_oracle_input_types_every_value() -> None:
    value: dict[str, Any] = {"m": [None, True, -3, 2.0, math.nan, -math.inf, "ü", b"\x01", []]}
    assert oracle_input(value) == {"t": "map", "v": [{"k": "m", "v": {"t": "slice", "v": [
        {"t": "empty"},
        {"t": "bool", "v": True},
        {"t": "int", "v": "-3"},
        {"t": "double", "v": "2.0"},
        {"t": "double", "v": "nan"},
        {"t": "double", "v": "-inf"},
        {"t": "str", "v": "ü"},
        {"t": "bytes", "v": "AQ=="},
        {"t": "slice", "v": []},
    ]}}]}  # fmt: skip


def _types(value: Any, depth: int, seen: set[tuple[str, int]]) -> None:
    seen.add((type(value).__name__, depth))
    children = (
        value if isinstance(value, list) else value.values() if isinstance(value, dict) else []
    )
    for child in children:
        _types(child, depth + 1, seen)


def test_random_values_cover_every_type_nested() -> None:
    rng = random.Random(1)
    doubles = random_doubles(rng, 10)
    seen: set[tuple[str, int]] = set()
    for _ in range(2000):
        _types(random_value(rng, doubles), 0, seen)
    kinds = {"NoneType", "bool", "int", "float", "str", "bytes", "list", "dict"}
    assert {name for name, depth in seen if depth == 0} == kinds
    assert {name for name, depth in seen if depth == 2} == kinds - {"list", "dict"}


def test_without_go_it_says_how_to_get_pdata() -> None:
    line = missing_go_line()
    assert "build.sh" in line and "pdata@v1.71.0" in line
