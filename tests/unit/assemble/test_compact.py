"""Compact held spans decode to the same spans, sharing what repeats."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.assemble.compact import CompactSpans
from streams.model.span import make_span

attrs = st.dictionaries(
    st.text(max_size=5),
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.text(max_size=5),
        st.lists(st.integers(0, 9), max_size=3),
    ),
    max_size=4,
)


@given(attrs, attrs)
def test_round_trip(resource: dict[str, object], attributes: dict[str, object]) -> None:
    span = make_span(
        "a" * 32,
        "b" * 16,
        "op",
        "svc",
        1,
        2,
        resource_attributes=resource,
        attributes=attributes,
        events=[{"time_unix_nano": 1, "name": "e", "attributes": {}}],
    )
    codec = CompactSpans()
    assert codec.decode(codec.encode(span)) == span


def test_equal_resources_are_held_once_and_lists_are_fresh() -> None:
    codec = CompactSpans()
    a = codec.encode(
        make_span(
            "a" * 32,
            "1" * 16,
            "op",
            "svc",
            1,
            2,
            resource_attributes={"service.name": "svc", "host": "h1"},
        )
    )
    b = codec.encode(
        make_span(
            "a" * 32,
            "2" * 16,
            "op",
            "svc",
            1,
            2,
            resource_attributes={"service.name": "svc", "host": "h1"},
        )
    )
    first, second = codec.decode(a), codec.decode(b)
    assert first["resource_attributes"] is second["resource_attributes"]
    assert first["events"] == [] and first["events"] is not second["events"]
