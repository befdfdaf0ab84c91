"""AlertEvent is a faithful typed view of alert.avsc: every field survives Avro both ways, and
its text helpers give the value against the threshold in human units."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

from streams.alert.events import (
    FIRING,
    RESOLVED,
    AlertEvent,
    Attribution,
    ErrorOriginShare,
    format_signal_value,
)
from streams.model.codec import AvroCodec

MS = 1_000_000
S = 1_000_000_000
# A window an hour ago: stored rows must be younger than the TTL.
T0 = (time.time_ns() - 3600 * S) // (10 * S) * (10 * S)


def alert_event(**changes: Any) -> AlertEvent:
    """A firing anomaly alert on payment/charge with two exemplars and two attributions."""
    event = AlertEvent(
        fingerprint="5f1c0ffee0ddba11",
        rule="latency-anomaly",
        rule_type="anomaly",
        state=FIRING,
        severity="critical",
        labels={"team": "shop"},
        service="payment",
        operation="charge",
        signal="p99",
        condition=">",
        value=612 * MS,
        threshold=150 * MS,
        baseline=48.2 * MS,
        window_start_unix_nano=T0,
        window_end_unix_nano=T0 + 10 * S,
        starts_at_unix_nano=T0 - 10 * S,
        sequence=2,
        exemplar_trace_ids=(f"{0xA:032x}", f"{0xB:032x}"),
        attribution=(
            Attribution("payment", "charge", 40 * MS, 160 * MS, 120 * MS, 0.8),
            Attribution("checkout", "POST /checkout", 10 * MS, 40 * MS, 30 * MS, 0.2),
        ),
        emitted_at_unix_nano=T0 + 41 * S,
    )
    return dataclasses.replace(event, **changes)


def resolved_event(**changes: Any) -> AlertEvent:
    """The same incident resolved two windows later."""
    resolved: dict[str, Any] = {
        "state": RESOLVED,
        "value": 90.1 * MS,
        "sequence": 3,
        "window_start_unix_nano": T0 + 20 * S,
        "window_end_unix_nano": T0 + 30 * S,
        "ends_at_unix_nano": T0 + 30 * S,
        "emitted_at_unix_nano": T0 + 61 * S,
    }
    return alert_event(**{**resolved, **changes})


def test_every_field_survives_avro_both_ways() -> None:
    codec = AvroCodec("alert")
    event = alert_event()
    record = event.to_record()
    assert set(record) == {f["name"] for f in codec.schema["fields"]}
    assert AlertEvent.from_record(codec.decode(codec.encode(record))) == event


def test_defaults_of_the_schema_fill_a_minimal_record() -> None:
    record = alert_event().to_record()
    for name in ("severity", "labels", "baseline", "ends_at_unix_nano", "sequence",
                 "exemplar_trace_ids", "attribution", "emitted_at_unix_nano"):  # fmt: skip
        del record[name]
    event = AlertEvent.from_record(record)
    assert (event.severity, event.labels, event.sequence, event.attribution) == (
        "warning",
        {},
        0,
        (),
    )
    assert event.time_unix_nano == event.window_end_unix_nano  # no emitted_at: the window end


def test_events_are_frozen_and_hashable() -> None:
    event = alert_event()
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.state = RESOLVED  # type: ignore[misc]
    assert len({event, alert_event()}) == 1


@pytest.mark.parametrize(
    ("signal", "value", "text"),
    [
        ("p99", 612 * MS, "612 ms"),
        ("p50", 1.234 * MS, "1.23 ms"),
        ("p95", 48.25 * MS, "48.2 ms"),
        ("error_rate", 0.025, "2.50%"),
        ("throughput", 41.66, "41.7 calls/s"),
        ("p90", 0, "0 ms"),
    ],
)
def test_signal_values_in_human_units(signal: str, value: float, text: str) -> None:
    assert format_signal_value(signal, value) == text


def test_comparison_and_attribution_text() -> None:
    assert alert_event().comparison() == "p99 612 ms > 150 ms (baseline 48.2 ms)"
    assert resolved_event().comparison() == "p99 90.1 ms, not > 150 ms (baseline 48.2 ms)"
    threshold = alert_event(rule_type="threshold", signal="error_rate", value=0.12, threshold=0.05)
    assert threshold.comparison() == "error_rate 12.0% > 5.00%"
    top = alert_event().top_attribution
    assert top is not None
    assert top.describe() == "payment: charge +120 ms (80% of the increase)"
    assert alert_event().slowest_trace_id == f"{0xA:032x}"
    assert alert_event(exemplar_trace_ids=(), attribution=()).top_attribution is None


def error_rate_event() -> AlertEvent:
    """A firing error-rate alert on checkout whose errors mostly originate in inventory."""
    return alert_event(
        fingerprint="e2202e2202e2202e",
        rule="checkout-errors",
        rule_type="threshold",
        service="checkout",
        operation="POST /checkout",
        signal="error_rate",
        value=0.3,
        threshold=0.1,
        baseline=0.0,
        attribution=(),
        error_origins=(
            ErrorOriginShare("inventory", "Reserve", 41, 0.82, ("checkout", "frontend")),
            ErrorOriginShare("payment", "charge", 9, 0.18, ("checkout",)),
        ),
    )


def test_an_error_rate_event_carries_where_its_errors_originated() -> None:
    event = error_rate_event()
    record = event.to_record()
    codec = AvroCodec("alert")
    assert codec.decode(codec.encode(record)) == record
    assert AlertEvent.from_record(record) == event
    assert event.top_error_origin == (
        "82% of checkout's error traces originate in inventory/Reserve"
    )
    assert event.summary_line().endswith(event.top_error_origin)
    # Records written before error origins existed read back without them.
    old = {k: v for k, v in record.items() if k != "error_origins"}
    assert AlertEvent.from_record(old).error_origins == ()
    assert alert_event().top_error_origin == ""
