"""validate_span: each invalid case gives its reason, each repair leaves its mark."""

from __future__ import annotations

import copy
import timeit
from typing import Any

import pytest

from streams.config import IngestConfig
from streams.errors import DecodeError
from streams.ingest.validate import (
    CLAMPED_END_TIME,
    DROPPED_ATTRIBUTES,
    DROPPED_EVENTS,
    DROPPED_LINKS,
    DROPPED_RESOURCE_ATTRIBUTES,
    TRUNCATION_MARKER,
    check_record_size,
    validate_span,
)
from streams.model.span import Span, make_span

LIMITS = IngestConfig()
TID = "4bf92f3577b34da6a3ce929d0e0e4736"
SID = "00f067aa0ba902b7"


def span(**fields: Any) -> Span:
    built = make_span(TID, SID, "GET /", "web", 1_000, 2_000)
    built.update(fields)  # type: ignore[typeddict-item]
    return built


INVALID = [
    ("invalid-trace-id", {"trace_id": "abc"}),
    ("invalid-trace-id", {"trace_id": "0" * 32}),
    ("invalid-trace-id", {"trace_id": "g" * 32}),
    ("invalid-trace-id", {"trace_id": TID + "00"}),
    ("invalid-span-id", {"span_id": "0" * 16}),
    ("invalid-span-id", {"span_id": "xyz"}),
    ("invalid-span-id", {"span_id": TID}),
    ("invalid-parent-span-id", {"parent_span_id": "123"}),
    ("invalid-parent-span-id", {"parent_span_id": "0" * 16}),
    ("invalid-start-time", {"start_time_unix_nano": 0}),
    ("invalid-start-time", {"start_time_unix_nano": -5}),
    ("invalid-start-time", {"start_time_unix_nano": 2**63}),
    ("invalid-start-time", {"start_time_unix_nano": "1000"}),
    ("invalid-end-time", {"end_time_unix_nano": 2**64}),
    ("invalid-kind", {"kind": "SPAN_KIND_SERVER"}),
    ("invalid-kind", {"kind": "server"}),
    ("invalid-status", {"status_code": "FAILED"}),
    ("invalid-event-time", {"events": [{"time_unix_nano": -1, "name": "e", "attributes": {}}]}),
    (
        "invalid-link",
        {"links": [{"trace_id": "x", "span_id": SID, "trace_state": "", "attributes": {}}]},
    ),
    (
        "invalid-link",
        {"links": [{"trace_id": TID, "span_id": "0" * 16, "trace_state": "", "attributes": {}}]},
    ),
]


@pytest.mark.parametrize(("reason", "fields"), INVALID)
def test_invalid_span_is_rejected_with_its_reason(reason: str, fields: dict[str, Any]) -> None:
    with pytest.raises(DecodeError) as info:
        validate_span(span(**fields), LIMITS)
    assert info.value.reason == reason
    assert info.value.detail  # says what to fix


def test_valid_span_is_returned_unchanged() -> None:
    given = span(parent_span_id=SID[::-1], attributes={"a": 1, "b": "x" * 100, "c": [b"y"]})
    before = copy.deepcopy(given)
    assert validate_span(given, LIMITS) == before


def test_uppercase_ids_are_lowercased() -> None:
    link = {"trace_id": TID.upper(), "span_id": SID.upper(), "trace_state": "", "attributes": {}}
    got = validate_span(
        span(
            trace_id=TID.upper(),
            span_id=SID.upper(),
            parent_span_id="ABCDEF0123456789",
            links=[link],
        ),
        LIMITS,
    )
    assert (got["trace_id"], got["span_id"], got["parent_span_id"]) == (
        TID,
        SID,
        "abcdef0123456789",
    )
    assert (got["links"][0]["trace_id"], got["links"][0]["span_id"]) == (TID, SID)
    assert link["trace_id"] == TID.upper()  # the caller's nested dict is not edited


def test_empty_name_and_service_are_repaired() -> None:
    got = validate_span(span(name="", service_name=""), LIMITS)
    assert (got["name"], got["service_name"]) == ("<unnamed>", "unknown_service")


def test_end_before_start_is_clamped() -> None:
    got = validate_span(span(start_time_unix_nano=5_000, end_time_unix_nano=4_000), LIMITS)
    assert got["end_time_unix_nano"] == 5_000
    assert got["attributes"][CLAMPED_END_TIME] is True


def test_too_many_attributes_keep_the_first_sorted_keys() -> None:
    attrs: dict[str, Any] = {f"k{i:03d}": i for i in range(10)}
    shared = dict(attrs)
    limits = IngestConfig(max_attributes=4)
    got = validate_span(span(attributes=shared, resource_attributes=dict(attrs)), limits)
    kept = {k: v for k, v in got["attributes"].items() if not k.startswith("tracepipe.")}
    assert kept == {"k000": 0, "k001": 1, "k002": 2, "k003": 3}
    assert got["attributes"][DROPPED_ATTRIBUTES] == 6
    assert got["attributes"][DROPPED_RESOURCE_ATTRIBUTES] == 6
    assert len(got["resource_attributes"]) == 4
    assert shared == attrs  # repaired into a new dict


def test_long_values_are_truncated_with_a_marker() -> None:
    limits = IngestConfig(max_attribute_value_bytes=32)
    got = validate_span(
        span(attributes={"s": "é" * 100, "b": b"\x01" * 100, "l": ["x" * 100, 1], "ok": "short"}),
        limits,
    )
    value = got["attributes"]["s"]
    assert isinstance(value, str) and value.endswith(TRUNCATION_MARKER)
    assert len(value.encode()) <= 32
    raw = got["attributes"]["b"]
    assert isinstance(raw, bytes) and len(raw) <= 32 and raw.endswith(TRUNCATION_MARKER.encode())
    items = got["attributes"]["l"]
    assert isinstance(items, list) and str(items[0]).endswith(TRUNCATION_MARKER)
    assert items[1] == 1
    assert got["attributes"]["ok"] == "short"


def test_too_many_events_and_links_are_counted() -> None:
    events = [{"time_unix_nano": 1_500, "name": f"e{i}", "attributes": {}} for i in range(5)]
    links = [
        {"trace_id": TID, "span_id": f"{i + 1:016x}", "trace_state": "", "attributes": {}}
        for i in range(4)
    ]
    got = validate_span(span(events=events, links=links), IngestConfig(max_events=2, max_links=3))
    assert [e["name"] for e in got["events"]] == ["e0", "e1"]
    assert len(got["links"]) == 3
    assert got["attributes"][DROPPED_EVENTS] == 3
    assert got["attributes"][DROPPED_LINKS] == 1


def test_event_and_link_attributes_are_limited_too() -> None:
    attrs: dict[str, Any] = {f"k{i}": "v" for i in range(5)}
    got = validate_span(
        span(
            events=[{"time_unix_nano": 1_500, "name": "e", "attributes": dict(attrs)}],
            links=[{"trace_id": TID, "span_id": SID, "trace_state": "", "attributes": attrs}],
        ),
        IngestConfig(max_attributes=2),
    )
    assert got["events"][0]["attributes"] == {"k0": "v", "k1": "v", DROPPED_ATTRIBUTES: 3}
    assert got["links"][0]["attributes"] == {"k0": "v", "k1": "v", DROPPED_ATTRIBUTES: 3}


def test_record_size_limit() -> None:
    check_record_size(b"x" * 10, IngestConfig(max_record_bytes=10))
    with pytest.raises(DecodeError) as info:
        check_record_size(b"x" * 11, IngestConfig(max_record_bytes=10))
    assert info.value.reason == "record-too-large"
    assert "TRACEPIPE_INGEST_MAX_RECORD_BYTES" in info.value.detail


def test_valid_span_is_cheap_to_validate() -> None:
    typical = span(
        parent_span_id=SID[::-1],
        attributes={f"attr.{i}": f"value-{i}" for i in range(8)} | {"n": 3, "f": 0.5},
        resource_attributes={"service.name": "web", "host.name": "h1", "k8s.pod.name": "p"},
        events=[{"time_unix_nano": 1_500, "name": "e", "attributes": {"a": 1}}],
    )
    runs = 20_000
    seconds = min(timeit.repeat(lambda: validate_span(typical, LIMITS), number=runs, repeat=3))
    # A loose bound so slow CI machines pass; the measured figure is ~1-2 µs.
    assert seconds / runs < 20e-6


def _doubtful_cases() -> list[Span]:
    """Spans each of which validate_span rejects or repairs, in every way columns can carry."""
    many = {f"k{i}": i for i in range(5)}
    link = {"trace_id": "a" * 32, "span_id": "b" * 16, "trace_state": "", "attributes": {}}
    event = {"time_unix_nano": 3, "name": "e", "attributes": {}}
    return [
        span(trace_id="0" * 32),
        span(span_id="0" * 16),
        span(start_time_unix_nano=0),
        span(start_time_unix_nano=-5),
        span(name=""),
        span(service_name=""),
        span(end_time_unix_nano=1),
        span(attributes=many),
        span(resource_attributes={**many, "service.name": "svc"}),
        span(attributes={"long": "é" * 100}),
        span(attributes={"blob": b"x" * 100, "list": ["y" * 100]}),
        span(events=[event, event]),
        span(events=[{**event, "time_unix_nano": -1}]),
        span(events=[{**event, "attributes": many}]),
        span(links=[link, link]),
        span(links=[{**link, "trace_id": "0" * 32}]),
        span(links=[{**link, "span_id": "XYZ"}]),
        span(links=[{**link, "attributes": many}]),
    ]


def test_columns_are_validated_as_validate_span_validates_each_span() -> None:
    from streams.ingest.validate import validate_columns
    from streams.model.column_codec import columns_from_spans

    limits = IngestConfig(max_attributes=3, max_attribute_value_bytes=64, max_events=1,
                          max_links=1)  # fmt: skip
    good = [span(span_id=f"{i + 1:016x}", attributes={"i": i, "s": "ok"}) for i in range(5)]
    spans = [*good[:2], *_doubtful_cases(), *good[2:]]
    expected_valid, expected_rejected = [], []
    for s in copy.deepcopy(spans):
        try:
            expected_valid.append(validate_span(s, limits))
        except DecodeError as err:
            expected_rejected.append((s["span_id"], s["start_time_unix_nano"], err.reason))
    valid, rejected = validate_columns(columns_from_spans(spans), limits)
    def key(s: Span) -> tuple[str, int, str]:
        return s["span_id"], s["start_time_unix_nano"], repr(s)

    assert sorted(valid.spans(), key=key) == sorted(expected_valid, key=key)
    assert sorted((s["span_id"], s["start_time_unix_nano"], e.reason) for s, e in rejected) == (
        sorted(expected_rejected)
    )
    assert len(expected_rejected) >= 5 and len(expected_valid) > len(good)


def test_valid_columns_come_back_as_they_are() -> None:
    from streams.ingest.validate import validate_columns
    from streams.model.column_codec import columns_from_spans

    columns = columns_from_spans([span(span_id=f"{i + 1:016x}") for i in range(10)])
    valid, rejected = validate_columns(columns, LIMITS)
    assert valid is columns and rejected == []


def test_column_rows_keep_the_batch_order_and_name_each_rejected_row() -> None:
    from streams.ingest.validate import validate_column_rows
    from streams.model.column_codec import columns_from_spans

    limits = IngestConfig(max_attributes=3, max_attribute_value_bytes=64, max_events=1,
                          max_links=1)  # fmt: skip
    good = [span(span_id=f"{i + 1:016x}", attributes={"i": i, "s": "ok"}) for i in range(5)]
    spans = [*good[:2], *_doubtful_cases(), *good[2:]]
    expected_valid, expected_rejected = [], []
    for row, s in enumerate(copy.deepcopy(spans)):
        try:
            expected_valid.append(validate_span(s, limits))
        except DecodeError as err:
            expected_rejected.append((row, s, err.reason))
    valid, rejected = validate_column_rows(columns_from_spans(spans), limits)
    # Repaired spans stay where they were, between the ones that needed nothing.
    assert valid.spans() == expected_valid
    assert [(row, s, err.reason) for row, s, err in rejected] == expected_rejected
