"""Attribution ranks the growth of critical-path self time per operation in an incident."""

from __future__ import annotations

import pytest

from streams.alert.attribution import attribute
from streams.model.codec import AvroCodec

MS = 1_000_000.0


def test_largest_increase_first_with_its_share() -> None:
    baseline = {
        ("frontend", "GET /checkout"): 50 * MS,
        ("checkout", "POST /checkout"): 3 * MS,
        ("payment", "charge"): 5 * MS,
    }
    current = {
        ("frontend", "GET /checkout"): 51 * MS,
        ("checkout", "POST /checkout"): 3 * MS,
        ("payment", "charge"): 25 * MS,
    }
    got = attribute(current, baseline)
    assert got == [
        {
            "service": "payment",
            "operation": "charge",
            "baseline_self_time_ns": 5 * MS,
            "current_self_time_ns": 25 * MS,
            "increase_ns": 20 * MS,
            "share": pytest.approx(20 / 21),
        },
        {
            "service": "frontend",
            "operation": "GET /checkout",
            "baseline_self_time_ns": 50 * MS,
            "current_self_time_ns": 51 * MS,
            "increase_ns": 1 * MS,
            "share": pytest.approx(1 / 21),
        },
    ]


def test_new_operations_count_whole_and_shrunk_ones_not_at_all() -> None:
    baseline = {("db", "select"): 10 * MS, ("cache", "get"): 4 * MS}
    current = {("db", "select"): 2 * MS, ("retry", "backoff"): 6 * MS}
    (only,) = attribute(current, baseline)
    assert (only["service"], only["baseline_self_time_ns"], only["increase_ns"]) == (
        "retry",
        0.0,
        6 * MS,
    )
    assert only["share"] == 1.0


def test_top_five_with_shares_of_every_increase() -> None:
    current = {("svc", f"op{i}"): float(i) for i in range(1, 9)}
    got = attribute(current, {})
    assert [a["operation"] for a in got] == ["op8", "op7", "op6", "op5", "op4"]
    assert got[0]["share"] == pytest.approx(8 / 36)  # shares are of all positive increases
    assert [a["operation"] for a in attribute(current, {}, limit=2)] == ["op8", "op7"]


def test_ties_in_service_operation_order_and_nothing_when_nothing_grew() -> None:
    current = {("b", "x"): 2.0, ("a", "y"): 2.0, ("a", "x"): 2.0}
    assert [(a["service"], a["operation"]) for a in attribute(current, {})] == [
        ("a", "x"),
        ("a", "y"),
        ("b", "x"),
    ]
    assert attribute({("a", "x"): 1.0}, {("a", "x"): 1.0}) == []
    assert attribute({}, {}) == []


def test_entries_fit_the_alert_schema() -> None:
    codec = AvroCodec("alert")
    entries = attribute({("payment", "charge"): 25 * MS}, {("payment", "charge"): 5 * MS})
    attribution_fields = {
        f["name"]
        for f in next(f for f in codec.schema["fields"] if f["name"] == "attribution")["type"][
            "items"
        ]["fields"]
    }
    assert set(entries[0]) == attribution_fields
