"""Spans become otel_traces rows as the Collector writes them; failed inserts are retried."""

from __future__ import annotations

from typing import Any

import pytest

from streams.model.span import make_span
from streams.sink.spans import OTEL_TRACES_COLUMNS, attribute_string, span_row
from streams.warehouse import SPAN_KIND_VALUES, STATUS_CODE_VALUES


def row_dict(span: Any) -> dict[str, Any]:
    return dict(zip(OTEL_TRACES_COLUMNS, span_row(span), strict=True))


def test_row_maps_every_field() -> None:
    span = make_span(
        "a" * 32,
        "b" * 16,
        "GET /",
        "web",
        1_000,
        4_500,
        parent_span_id="c" * 16,
        kind="CLIENT",
        status_code="ERROR",
        status_message="timeout",
        attributes={"n": 3, "ok": False, "f": 0.25, "list": [1, "x"]},
        events=[{"time_unix_nano": 2_000, "name": "retry", "attributes": {"attempt": 2}}],
        links=[
            {
                "trace_id": "d" * 32,
                "span_id": "e" * 16,
                "trace_state": "k=v",
                "attributes": {"why": "batch"},
            }
        ],
    )
    row = row_dict(span)
    assert row["Timestamp"] == 1_000
    assert row["Duration"] == 3_500
    assert row["TraceId"] == "a" * 32 and row["ParentSpanId"] == "c" * 16
    assert row["SpanKind"] == SPAN_KIND_VALUES["CLIENT"]
    assert row["StatusCode"] == STATUS_CODE_VALUES["ERROR"]
    assert row["SpanAttributes"] == {
        "n": "3",
        "ok": "false",
        "f": "0.25",
        "list": '[1,"x"]',
        "tracepipe.source_format": "tracepipe",
    }
    assert row["ResourceAttributes"] == {"service.name": "web"}
    assert row["Events.Timestamp"] == [2_000]
    assert row["Events.Attributes"] == [{"attempt": "2"}]
    assert row["Links.TraceState"] == ["k=v"]


def test_negative_duration_is_clamped() -> None:
    assert row_dict(make_span("a" * 32, "b" * 16, "x", "s", 10, 5))["Duration"] == 0


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("s", "s"),
        (True, "true"),
        (7, "7"),
        (1.5, "1.5"),
        (None, ""),
        (b"\xff", "/w=="),
        ([True, 2], "[true,2]"),
    ],
)
def test_attribute_strings(value: Any, text: str) -> None:
    assert attribute_string(value) == text
