"""Attribution ranks the growth of critical-path self time per operation in an incident, over the
breaching operation's slow traces (read from the real engine)."""

from __future__ import annotations

import math
import random
import time
from typing import Any

import pytest

from streams.aggregate.merge import (
    FinalWindow,
    WindowMerger,
    final_record,
    partial_record,
    watermark_record,
)
from streams.aggregate.observations import LATENCY_DIMENSIONS, latency_batch
from streams.aggregate.window import WindowAggregator
from streams.alert.attribution import attribute, read_attribution, read_error_origins
from streams.alert.evaluate import AlertEvaluator, operation_windows
from streams.alert.rules import default_rules
from streams.assemble.record import build_trace_record
from streams.model.codec import AvroCodec
from streams.model.column_codec import columns_from_spans
from streams.model.span import Span, make_span
from streams.query.critical_path import self_time_per_trace
from streams.sink.traces import (
    CRITICAL_PATH,
    CRITICAL_PATH_COLUMNS,
    ERROR_ORIGINS,
    ERROR_ORIGINS_COLUMNS,
    critical_path_rows,
    error_origin_rows,
)
from streams.sink.windows import (
    ERROR_ORIGIN_WINDOWS,
    ERROR_ORIGIN_WINDOWS_COLUMNS,
    LATENCY,
    LATENCY_COLUMNS,
    latency_row,
)
from streams.warehouse import Warehouse

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


# --- over the breaching operation's slow traces, on the real engine ---------------------------

S = 1_000_000_000
MS_INT = 1_000_000
WINDOW_NS = 10 * S
EXEMPLARS = 5
TRACES_PER_S = 20
HEALTHY_WINDOWS = 12
INCIDENT_WINDOWS = 3
# Whole windows an hour ago: inside the tables' TTL.
T0 = (time.time_ns() - 3600 * S) // WINDOW_NS * WINDOW_NS


def shop_trace(rng: random.Random, index: int, slow_payment: bool) -> list[Span]:
    """One in three traces is a checkout, frontend -> checkout -> payment, each with time of its
    own; the rest are frontend GET / -> cart, which never touch payment."""
    trace = f"{rng.getrandbits(128) | 1:032x}"
    ids = [f"{rng.getrandbits(64) | 1:016x}" for _ in range(3)]
    start = T0 + index * S // TRACES_PER_S

    def own(median_ms: float) -> int:
        return int(rng.lognormvariate(math.log(median_ms * MS), 0.5))

    def server(depth: int, name: str, service: str, duration_ns: int) -> Span:
        begin = start + depth * MS_INT
        parent = {"parent_span_id": ids[depth - 1]} if depth else {}
        return make_span(
            trace, ids[depth], name, service, begin, begin + duration_ns, kind="SERVER", **parent
        )

    if index % 3:
        cart = own(2)
        return [server(0, "GET /", "frontend", own(4) + cart), server(1, "GetCart", "cart", cart)]
    payment = own(20) * (5 if slow_payment else 1)
    checkout = own(6) + payment
    return [
        server(0, "POST /checkout", "frontend", own(5) + checkout),
        server(1, "PlaceOrder", "checkout", checkout),
        server(2, "Charge", "payment", payment),
    ]


def final_windows(spans: list[Span]) -> list[FinalWindow]:
    """The aggregation stage's two phases over one source partition."""
    aggregator = WindowAggregator(WINDOW_NS // MS_INT, 0, 1, 0.01, EXEMPLARS)
    aggregator.add(0, latency_batch(columns_from_spans(spans)), 0)
    closed, marks = aggregator.close_due([0], T0 + 3600 * S)
    merger = WindowMerger(1, EXEMPLARS)
    for window in closed:
        merger.add(0, partial_record(window))
    merger.add(0, watermark_record(0, marks[0]))
    return merger.take_final()


def test_a_callers_alert_is_attributed_over_its_slow_traces_not_diluted(
    migrated_warehouse: Warehouse,
) -> None:
    """frontend -> checkout -> payment, payment 5x slower: frontend POST /checkout's p99 alert
    names payment, with an increase of the order of the p99's, although two in three of
    frontend's traces never call payment."""
    rng = random.Random(14)
    windows = HEALTHY_WINDOWS + INCIDENT_WINDOWS
    traces = [
        shop_trace(rng, i, slow_payment=i >= HEALTHY_WINDOWS * 10 * TRACES_PER_S)
        for i in range(windows * 10 * TRACES_PER_S)
    ]
    finals = final_windows([s for t in traces for s in t])
    records = [
        build_trace_record(t, version=1, completion="complete", emitted_at_unix_nano=T0)
        for t in traces
    ]
    warehouse = migrated_warehouse
    warehouse.execute(f"TRUNCATE TABLE {LATENCY}")
    warehouse.execute(f"TRUNCATE TABLE {CRITICAL_PATH}")
    emitted = T0 + windows * WINDOW_NS
    warehouse.insert(
        LATENCY,
        LATENCY_COLUMNS,
        [latency_row(final_record(w, LATENCY_DIMENSIONS, emitted)) for w in finals],  # type: ignore[arg-type]
    )
    paths = [row for record in records for row in critical_path_rows(record)]
    warehouse.insert(CRITICAL_PATH, CRITICAL_PATH_COLUMNS, paths)
    clock = T0
    evaluator = AlertEvaluator(default_rules(), lambda: clock)
    fired = []
    for window in operation_windows(finals, EXEMPLARS):
        clock = window.window_end_unix_nano + S
        fired += [e for e in evaluator.evaluate(window) if e["state"] == "firing"]
    by_operation = {(e["service"], e["operation"]): e for e in fired}
    event = by_operation["frontend", "POST /checkout"]

    got = read_attribution(warehouse, event, WINDOW_NS, 6, EXEMPLARS)

    top = got[0]
    assert (top["service"], top["operation"]) == ("payment", "Charge"), got
    assert top["share"] > 0.8, got
    p99_increase = event["value"] - event["baseline"]
    assert 0.5 * p99_increase < top["increase_ns"] < 1.5 * p99_increase, (p99_increase, got)
    # The same numbers for payment's own alert: its slow traces are the same kind of trace.
    charge = by_operation["payment", "Charge"]
    own = read_attribution(warehouse, charge, WINDOW_NS, 6, EXEMPLARS)
    assert (own[0]["service"], own[0]["operation"]) == ("payment", "Charge")
    assert own[0]["increase_ns"] > 0.5 * (charge["value"] - charge["baseline"])


def test_self_time_is_averaged_over_the_traces_found(migrated_warehouse: Warehouse) -> None:
    warehouse = migrated_warehouse
    warehouse.execute(f"TRUNCATE TABLE {CRITICAL_PATH}")
    rows = [
        ("a" * 32, 1, T0, "payment", "Charge", 30 * MS_INT, 40 * MS_INT),
        ("a" * 32, 1, T0, "checkout", "PlaceOrder", 10 * MS_INT, 40 * MS_INT),
        ("b" * 32, 1, T0, "payment", "Charge", 10 * MS_INT, 10 * MS_INT),
    ]
    warehouse.insert(CRITICAL_PATH, CRITICAL_PATH_COLUMNS, rows)
    # A trace with no stored critical path (not written yet) does not count as zero time.
    got = self_time_per_trace(warehouse, ["a" * 32, "b" * 32, "c" * 32, "a" * 32])
    assert got == {("payment", "Charge"): 20 * MS, ("checkout", "PlaceOrder"): 5 * MS}
    assert self_time_per_trace(warehouse, ["c" * 32]) == {}
    assert self_time_per_trace(warehouse, []) == {}


# --- error-rate alerts: where the operation's errors originated -------------------------------


def origin_window(
    start: int, seen: str, origin: str, traces: int, emitted: int = 0
) -> tuple[Any, ...]:
    """A tracepipe_error_origin_windows row: `seen` and `origin` as "service/operation" ("" for
    the row of every origin)."""
    service, operation = seen.split("/", 1)
    origin_service, origin_operation = origin.split("/", 1) if origin else ("", "")
    example = [f"{start // S + traces:032x}"]
    return (start, start + WINDOW_NS, service, operation, origin_service, origin_operation,
            traces, example, T0 + emitted)  # fmt: skip


def test_an_error_rate_alert_carries_its_operations_windowed_origin_shares(
    migrated_warehouse: Warehouse,
) -> None:
    warehouse = migrated_warehouse
    warehouse.execute(f"TRUNCATE TABLE {ERROR_ORIGIN_WINDOWS}")
    warehouse.execute(f"TRUNCATE TABLE {ERROR_ORIGINS}")
    w0, w1, w2 = T0, T0 + WINDOW_NS, T0 + 2 * WINDOW_NS
    checkout, reserve, charge = "checkout/POST /checkout", "inventory/Reserve", "payments/Charge"
    rows = [
        # Before the incident: not its errors.
        origin_window(w0, checkout, "", 50),
        origin_window(w0, checkout, charge, 50),
        # The incident's two windows.
        origin_window(w1, checkout, "", 6),
        origin_window(w1, checkout, "", 6, emitted=1),  # stored twice: one row under FINAL
        origin_window(w1, checkout, reserve, 5),
        origin_window(w1, checkout, charge, 1),
        origin_window(w2, checkout, "", 4),
        origin_window(w2, checkout, reserve, 3),
        origin_window(w2, checkout, charge, 1),
        # Where inventory's and payments' errors were seen besides checkout.
        origin_window(w1, reserve, reserve, 5),
        origin_window(w1, "frontend/GET /checkout", reserve, 5),
        origin_window(w2, "checkout/reserve", reserve, 3),
        origin_window(w1, charge, charge, 1),
    ]
    warehouse.insert(ERROR_ORIGIN_WINDOWS, ERROR_ORIGIN_WINDOWS_COLUMNS, rows)
    event = {
        "signal": "error_rate",
        "service": "checkout",
        "operation": "POST /checkout",
        "starts_at_unix_nano": w1,
        "window_start_unix_nano": w2,
        "window_end_unix_nano": w2 + WINDOW_NS,
    }
    assert read_error_origins(warehouse, event) == [
        {"service": "inventory", "operation": "Reserve", "traces": 8, "share": 0.8,
         "propagated_to": ["checkout", "frontend"]},
        {"service": "payments", "operation": "Charge", "traces": 2, "share": 0.2,
         "propagated_to": ["checkout"]},
    ]  # fmt: skip
    assert read_error_origins(warehouse, {**event, "signal": "p99"}) == []

    # A first breaching window whose origin windows are not final yet: the stored per-trace
    # origins of the service's error traces started in it.
    w5 = T0 + 5 * WINDOW_NS
    spans = [
        make_span("a" * 32, "1" * 16, "POST /checkout", "checkout", w5, w5 + 50 * MS_INT,
                  kind="SERVER", status_code="ERROR"),
        make_span("a" * 32, "2" * 16, "GetPrice", "pricing", w5 + MS_INT, w5 + 40 * MS_INT,
                  kind="SERVER", status_code="ERROR", parent_span_id="1" * 16),
    ]  # fmt: skip
    record = build_trace_record(spans, version=1, completion="complete", emitted_at_unix_nano=w5)
    warehouse.insert(ERROR_ORIGINS, ERROR_ORIGINS_COLUMNS, error_origin_rows(record))
    first = {**event, "starts_at_unix_nano": w5, "window_start_unix_nano": w5,
             "window_end_unix_nano": w5 + WINDOW_NS}  # fmt: skip
    assert read_error_origins(warehouse, first) == [
        {"service": "pricing", "operation": "GetPrice", "traces": 1, "share": 1.0,
         "propagated_to": ["checkout"]},
    ]  # fmt: skip
