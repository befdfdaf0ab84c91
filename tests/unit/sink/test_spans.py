"""Spans become otel_traces rows as the Collector writes them; failed inserts are retried."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from streams.config import SpanSinkConfig
from streams.errors import WarehouseError
from streams.model.span import make_span
from streams.sink.spans import OTEL_TRACES_COLUMNS, SpanWriter, attribute_string, span_row
from streams.telemetry import Counters
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


class FlakyWarehouse:
    """Fails the first `failures` inserts, then stores rows in memory."""

    url = "memory://"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.rows: list[Sequence[Any]] = []
        self.closed = False

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        if self.failures:
            self.failures -= 1
            raise WarehouseError("connection refused")
        self.rows.extend(rows)
        return len(rows)

    def close(self) -> None:
        self.closed = True


def test_writer_retries_with_backoff_until_stored() -> None:
    warehouse = FlakyWarehouse(failures=4)
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    counters = Counters()
    config = SpanSinkConfig(retry_initial_backoff_ms=100, retry_max_backoff_ms=300)
    writer = SpanWriter(lambda: warehouse, config, counters, sleep=fake_sleep)  # type: ignore[arg-type,return-value]
    spans = [make_span("a" * 32, f"{i:016x}", "op", "svc", 1, 2) for i in range(3)]
    written = asyncio.run(writer.write(spans))
    writer.close()
    assert written == 3 and len(warehouse.rows) == 3
    assert sleeps == [0.1, 0.2, 0.3, 0.3]
    assert counters.total("tracepipe_sink_insert_failures_total") == 4
    assert counters.total("tracepipe_sink_spans_written_total") == 3
    assert warehouse.closed
