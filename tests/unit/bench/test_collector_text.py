"""bench.collector_text's matching of stored texts back to the values sent."""

from __future__ import annotations

from bench.collector_text import compare, value_index, value_key


def test_keys_name_their_value_and_other_keys_are_ignored() -> None:
    assert value_index(value_key(42)) == 42
    assert value_index("service.name") is None


def test_every_value_is_compared_in_both_columns_and_a_missing_one_differs() -> None:
    rows = [
        {
            "SpanAttributes": {value_key(0): "2", value_key(1): "[]", "service.name": "x"},
            "ResourceAttributes": {value_key(0): "2"},
        }
    ]
    compared, differing = compare(rows, [2.0, []], ["2", "[]"])
    assert compared == 3
    assert differing == [("ResourceAttributes", 1, "[]", "<missing>")]


def test_a_different_text_is_reported_with_both_texts() -> None:
    rows = [{"SpanAttributes": {value_key(0): "2.0"}, "ResourceAttributes": {value_key(0): "2"}}]
    assert compare(rows, [2.0], ["2"])[1] == [("SpanAttributes", 0, "2", "2.0")]
