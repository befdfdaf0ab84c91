"""The Grafana dashboard's SQL, every query of it, runs on the real embedded engine over real
pipeline output and gives the right answers.

The warehouse is filled the way a worker fills it: web-shop traces from TraceGenerator (with a
payment slowdown and an inventory failure burst) become otel_traces rows through the span sink's
row builder; their spans and assembled traces go through the aggregation stage's two phases
(WindowAggregator per source partition, WindowMerger) into tracepipe_latency and tracepipe_edges;
the final latency windows go through the alert evaluator with the built-in rules into
tracepipe_alerts. Each query is then expanded as Grafana and the ClickHouse plugin would expand
it (`expand`) and run on chDB, and its answer is compared with what the inserted data says, or
with what `tracepipe query` computes from the same tables.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from streams.aggregate.merge import (
    FinalWindow,
    WindowMerger,
    final_record,
    partial_record,
    watermark_record,
)
from streams.aggregate.observations import (
    EDGE_DIMENSIONS,
    LATENCY_DIMENSIONS,
    ORIGIN_DIMENSIONS,
    edge_observations,
    latency_batch,
    origin_observations,
)
from streams.aggregate.sketch import LatencySketch
from streams.aggregate.window import Observation, WindowAggregator
from streams.alert.evaluate import AlertEvaluator, operation_windows
from streams.alert.rules import default_rules
from streams.assemble.record import build_trace_record
from streams.config import AggregationConfig
from streams.generate.generator import TraceGenerator
from streams.generate.incident import parse_incident
from streams.generate.topology import default_topology
from streams.model.column_codec import columns_from_spans
from streams.model.span import Span
from streams.query.errors import windowed_origins
from streams.query.windows import (
    EdgeSummary,
    LatencySummary,
    dependency_summary,
    service_summary,
)
from streams.sink.alerts import ALERTS, ALERTS_COLUMNS, alert_row
from streams.sink.spans import (
    OTEL_TRACES,
    OTEL_TRACES_COLUMNS,
    SOURCE_FORMAT_ATTRIBUTE,
    attribute_map,
    span_row,
)
from streams.sink.windows import (
    EDGES,
    EDGES_COLUMNS,
    ERROR_ORIGIN_WINDOWS,
    ERROR_ORIGIN_WINDOWS_COLUMNS,
    LATENCY,
    LATENCY_COLUMNS,
    edge_row,
    latency_row,
    origin_window_row,
)
from streams.warehouse import Warehouse
from tests.unit.deploy.stack import dashboard, dashboard_queries

S = 1_000_000_000
MS = 1_000_000
WINDOW_S = 10
PARTITIONS = 3
EXEMPLARS = 5
TRACES_PER_S = 10
RUN_S = 240
# Windows of whole minutes an hour ago: recent enough for the TTL, and the step of 30 s
# (interval) cuts them into whole buckets.
T0 = (time.time_ns() - 3600 * S) // (60 * S) * (60 * S)
FROM_S = T0 // S
TO_S = FROM_S + RUN_S + 60
INTERVAL_S = 30
STEP_S = 30
SERVED = ("SERVER", "CONSUMER")
INCIDENTS = ("payment:latency*8@120s-180s", "inventory:errors=30%@60s-90s")
REDELIVERED_BATCH = 3_001

# ---------------------------------------------------------------------------------------------
# What Grafana and the ClickHouse plugin (grafana-clickhouse-datasource 4.x) do to a rawSql
# before ClickHouse sees it. First Grafana interpolates dashboard variables in the browser:
#   ${name:sqlstring}  every selected value in single quotes, ' doubled, joined by commas
#   ${name} / $name    a single value as it is; several joined as 'a','b' (the plugin's format)
#   All selected       the variable's custom allValue as it is, whatever the format: the
#                      dashboard's is a subquery, so All is every service in the tables now,
#                      not the options listed when the dashboard loaded
# then the plugin's backend (pkg/macros/macros.go) expands its macros with the panel's time
# range [from, to] (whole seconds here) and interval:
#   $__timeFilter(c)   c >= toDateTime(from) AND c <= toDateTime(to)
#   $__fromTime        toDateTime(from)
#   $__toTime          toDateTime(to)
#   $__interval_s      the interval in whole seconds, at least 1
# Anything else that looks like a macro or a variable is an error here, so a dashboard edit
# that uses a new one has to teach this function (and the tests) what it means.
# ---------------------------------------------------------------------------------------------
_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(?!__)(\w+)")
ALL = ["$__all"]
"""A multi-value variable's value when All is selected."""
_MACRO = re.compile(r"\$__(\w+)(?:\(([^()]*)\))?")


def expand(
    sql: str,
    variables: Mapping[str, Sequence[str]],
    from_s: int = FROM_S,
    to_s: int = TO_S,
    interval_s: int = INTERVAL_S,
) -> str:
    """The SQL the plugin sends for `sql`, with variables set to `variables` (name -> values)."""

    def variable(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        if name not in variables:
            raise AssertionError(f"the dashboard uses variable {name!r}, unknown to the test")
        values = list(variables[name])
        if values == ALL:
            return str(ALL_VALUES[name])
        form = match.group(2)
        if form == "sqlstring":
            return ",".join("'" + v.replace("'", "''") + "'" for v in values)
        if form is not None:
            raise AssertionError(f"variable format {form!r} is not expanded by the test")
        return values[0] if len(values) == 1 else "'" + "','".join(values) + "'"

    def macro(match: re.Match[str]) -> str:
        name, argument = match.group(1), match.group(2)
        if name == "timeFilter" and argument:
            column = argument.strip()
            return f"{column} >= toDateTime({from_s}) AND {column} <= toDateTime({to_s})"
        if name == "fromTime" and argument is None:
            return f"toDateTime({from_s})"
        if name == "toTime" and argument is None:
            return f"toDateTime({to_s})"
        if name == "interval_s" and argument is None:
            return str(max(interval_s, 1))
        raise AssertionError(f"macro $__{name} is not expanded by the test")

    return _MACRO.sub(macro, _VARIABLE.sub(variable, sql))


# --- the data -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shop:
    """What was stored, in the terms the assertions need."""

    spans: list[Span]
    latency: list[FinalWindow]
    edges: list[FinalWindow]
    alerts: list[dict[str, Any]]

    @property
    def services(self) -> list[str]:
        return sorted({s["service_name"] for s in self.spans})

    def served(self, services: Iterable[str] | None = None) -> list[Span]:
        """SERVER and CONSUMER spans (of `services`): the calls a service serves."""
        wanted = set(self.services if services is None else services)
        return [s for s in self.spans if s["kind"] in SERVED and s["service_name"] in wanted]

    def traces(self) -> dict[str, list[Span]]:
        by_trace: dict[str, list[Span]] = defaultdict(list)
        for span in self.spans:
            by_trace[span["trace_id"]].append(span)
        return by_trace


def duration_ns(span: Span) -> int:
    return span["end_time_unix_nano"] - span["start_time_unix_nano"]


def trace_duration_ms(spans: Sequence[Span]) -> float:
    """First span start to last span end, as the trace search computes it."""
    start = min(s["start_time_unix_nano"] for s in spans)
    end = max(s["end_time_unix_nano"] for s in spans)
    return (end - start) / MS


def clamped_quantile(durations: Sequence[int], q: float) -> float:
    """The quantile `tracepipe query` reads from one sketch of `durations`: within their min
    and max."""
    sketch = LatencySketch()
    sketch.add_many(durations)
    return sketch.quantile(q, (min(durations), max(durations)))


def step_of(time_unix_nano: int) -> int:
    """The unix second a time series point of the span ending then is drawn at."""
    window = time_unix_nano // (WINDOW_S * S) * WINDOW_S
    return window // STEP_S * STEP_S


def final_windows(observations: Iterable[Observation]) -> list[FinalWindow]:
    """The aggregation stage's two phases, as a worker runs them over PARTITIONS partitions."""
    aggregator = WindowAggregator(WINDOW_S * 1000, 0, 1, 0.01, EXEMPLARS)
    by_partition: dict[int, list[Observation]] = defaultdict(list)
    for obs in observations:
        by_partition[int(obs.trace_id, 16) % PARTITIONS].append(obs)
    for partition, batch in by_partition.items():
        aggregator.add(partition, batch, 0)
    # Every partition idle since time 0: its watermark moves past every window.
    closed, marks = aggregator.close_due(range(PARTITIONS), T0 + 3600 * S)
    merger = WindowMerger(PARTITIONS, EXEMPLARS)
    for window in closed:
        merger.add(0, partial_record(window))
    for partition, through in marks.items():
        merger.add(0, watermark_record(partition, through))
    return merger.take_final()


@pytest.fixture(scope="module")
def fresh_stack_answers(migrated_warehouse: Warehouse) -> dict[str, list[dict[str, Any]]]:
    """Every query's rows on the migrated tables before anything is stored (a fresh stack)."""
    return {name: run(migrated_warehouse, name) for name in QUERIES}


@pytest.fixture(scope="module")
def shop(
    migrated_warehouse: Warehouse, fresh_stack_answers: dict[str, list[dict[str, Any]]]
) -> Shop:
    """The module's warehouse filled with four minutes of web shop (after the fresh stack's
    answers were taken). Spans are stored as a redelivering worker stores them: all once, then
    the second half again in batches of another size, merges stopped so the copies stay."""
    generator = TraceGenerator(
        default_topology(), seed=7, incidents=[parse_incident(i) for i in INCIDENTS]
    )
    traces = [generator.trace(T0 + i * S // TRACES_PER_S) for i in range(RUN_S * TRACES_PER_S)]
    spans = [span for trace in traces for span in trace]
    emitted_at = T0 + (RUN_S + 60) * S
    records = [
        build_trace_record(t, version=1, completion="complete", emitted_at_unix_nano=emitted_at)
        for t in traces
    ]
    latency = final_windows(latency_batch(columns_from_spans(spans)).observations())
    edges = final_windows(edge_observations(records))
    origins = final_windows(origin_observations(records))

    evaluator = AlertEvaluator(default_rules(), lambda: clock)
    alerts: list[dict[str, Any]] = []
    for window in operation_windows(latency, EXEMPLARS):
        clock = window.window_end_unix_nano + S
        alerts.extend(evaluator.evaluate(window))

    warehouse = migrated_warehouse
    warehouse.execute(f"SYSTEM STOP MERGES {OTEL_TRACES}")
    rows = [span_row(s) for s in spans]
    warehouse.insert(OTEL_TRACES, OTEL_TRACES_COLUMNS, rows)
    for start in range(len(rows) // 2, len(rows), REDELIVERED_BATCH):
        warehouse.insert(OTEL_TRACES, OTEL_TRACES_COLUMNS, rows[start : start + REDELIVERED_BATCH])
    warehouse.insert(
        LATENCY,
        LATENCY_COLUMNS,
        [latency_row(final_record(w, LATENCY_DIMENSIONS, emitted_at)) for w in latency],  # type: ignore[arg-type]
    )
    warehouse.insert(
        EDGES,
        EDGES_COLUMNS,
        [edge_row(final_record(w, EDGE_DIMENSIONS, emitted_at)) for w in edges],  # type: ignore[arg-type]
    )
    warehouse.insert(
        ERROR_ORIGIN_WINDOWS,
        ERROR_ORIGIN_WINDOWS_COLUMNS,
        [origin_window_row(final_record(w, ORIGIN_DIMENSIONS, emitted_at)) for w in origins],  # type: ignore[arg-type]
    )
    warehouse.insert(ALERTS, ALERTS_COLUMNS, [alert_row(a) for a in alerts])
    return Shop(spans, latency, edges, alerts)


QUERIES = dashboard_queries(dashboard())
ALL_VALUES = {
    v["name"]: v["allValue"] for v in dashboard()["templating"]["list"] if "allValue" in v
}


def run(warehouse: Warehouse, name: str, **variables: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of the dashboard query `name`, variables at their defaults unless given."""
    values: dict[str, Sequence[str]] = {
        "service": ALL,
        "span_name": [""],
        "min_duration_ms": ["0"],
        "status": ["any"],
        "trace_id": [""],
        "window_s": [str(WINDOW_S)],
        **variables,
    }
    return warehouse.query_dicts(expand(QUERIES[name], values))


CHECKED = {
    "variable service",
    "panel Services over the range/A",
    "panel Request rate/A",
    "panel Error rate/A",
    "panel p99 latency/A",
    "panel p50 latency/A",
    "panel Latency heatmap/A",
    "panel Alert transitions/A",
    "annotation Alerts firing and resolved",
    "panel Service graph/nodes",
    "panel Service graph/edges",
    "panel Calls between services/A",
    "panel Trace search/A",
    "panel Trace/A",
    "panel Where errors originate/A",
}


def test_every_query_of_the_dashboard_is_checked_here() -> None:
    assert set(QUERIES) == CHECKED


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_every_query_runs_and_answers(name: str, shop: Shop, migrated_warehouse: Warehouse) -> None:
    rows = run(migrated_warehouse, name, trace_id=[shop.spans[0]["trace_id"]])
    assert rows, name


def test_a_fresh_stack_shows_empty_panels_not_errors(
    fresh_stack_answers: dict[str, list[dict[str, Any]]],
) -> None:
    assert fresh_stack_answers == {name: [] for name in QUERIES}


def test_window_variable_is_the_workers_window() -> None:
    (window,) = [v for v in dashboard()["templating"]["list"] if v["name"] == "window_s"]
    assert int(window["query"]) * 1000 == AggregationConfig().window_ms == WINDOW_S * 1000


def test_every_panel_reads_the_provisioned_data_source() -> None:
    board = dashboard()
    sources = {t["datasource"]["uid"] for p in board["panels"] for t in p.get("targets", [])}
    sources |= {v["datasource"]["uid"] for v in board["templating"]["list"] if "datasource" in v}
    assert sources == {"tracepipe-clickhouse"}


# --- RED per service ----------------------------------------------------------------------------


def test_service_variable_lists_every_service(shop: Shop, migrated_warehouse: Warehouse) -> None:
    rows = run(migrated_warehouse, "variable service")
    assert [r["ServiceName"] for r in rows] == shop.services


def assert_same_red(row: dict[str, Any], summary: LatencySummary | EdgeSummary) -> None:
    """A dashboard table row says what `tracepipe query` says of the same windows."""
    assert row["calls"] == summary.calls
    assert row["rate/s"] == pytest.approx(summary.throughput_per_s, rel=1e-12)
    assert row["err %"] == pytest.approx(summary.error_rate * 100, rel=1e-12)
    assert row["p50 ms"] == pytest.approx(summary.p50_ns / MS, rel=1e-9)
    assert row["p99 ms"] == pytest.approx(summary.p99_ns / MS, rel=1e-9)


def test_services_table_counts_the_spans_and_equals_tracepipe_query(
    shop: Shop, migrated_warehouse: Warehouse
) -> None:
    rows = run(migrated_warehouse, "panel Services over the range/A")
    served = shop.served()
    calls: dict[str, int] = defaultdict(int)
    errors: dict[str, int] = defaultdict(int)
    for span in served:
        calls[span["service_name"]] += 1
        errors[span["service_name"]] += span["status_code"] == "ERROR"
    assert {r["service"]: r["calls"] for r in rows} == calls
    assert {r["service"]: r["errors"] for r in rows} == errors

    # The same numbers `tracepipe query` prints for the same range.
    summaries = service_summary(migrated_warehouse, FROM_S * S, TO_S * S)
    assert [r["service"] for r in rows] == [s.service for s in summaries]
    for row, summary in zip(rows, summaries, strict=True):
        assert_same_red(row, summary)
        assert row["max ms"] == pytest.approx(summary.max_ns / MS, rel=1e-12)
    # The payment incident is in the range: payment's p99 is its slow calls'.
    payment = [duration_ns(s) for s in served if s["service_name"] == "payment"]
    (row,) = [r for r in rows if r["service"] == "payment"]
    assert row["p99 ms"] == pytest.approx(clamped_quantile(payment, 0.99) / MS, rel=1e-9)
    # Rates are over the four minutes of windows stored, not the five of the range.
    (cart,) = [r for r in rows if r["service"] == "cart"]
    assert cart["rate/s"] == pytest.approx(len(shop.served(["cart"])) / RUN_S)


def test_service_selection_filters_the_table(shop: Shop, migrated_warehouse: Warehouse) -> None:
    rows = run(migrated_warehouse, "panel Services over the range/A", service=["cart"])
    assert [r["service"] for r in rows] == ["cart"]
    assert rows[0]["calls"] == len(shop.served(["cart"]))
    two = run(migrated_warehouse, "panel Services over the range/A", service=["payment", "cart"])
    assert [(r["service"], r["calls"]) for r in two] == [
        ("cart", len(shop.served(["cart"]))),
        ("payment", len(shop.served(["payment"]))),
    ]


def unix_s(time_value: datetime | int) -> int:
    """A `time` column as unix seconds (DateTime reads as datetime, DateTime64 as ns)."""
    if isinstance(time_value, datetime):
        return int(time_value.timestamp())
    return time_value // S


def series(rows: list[dict[str, Any]], value: str) -> dict[tuple[int, str], float]:
    """(unix second, service) -> value of a time series query's rows."""
    return {(unix_s(r["time"]), r["ServiceName"]): r[value] for r in rows}


def test_rate_and_error_series_per_step(shop: Shop, migrated_warehouse: Warehouse) -> None:
    calls: dict[tuple[int, str], int] = defaultdict(int)
    errors: dict[tuple[int, str], int] = defaultdict(int)
    for span in shop.served():
        key = (step_of(span["end_time_unix_nano"]), span["service_name"])
        calls[key] += 1
        errors[key] += span["status_code"] == "ERROR"
    rate = series(run(migrated_warehouse, "panel Request rate/A"), "calls/s")
    assert rate == {key: pytest.approx(n / STEP_S) for key, n in calls.items()}
    failing = series(run(migrated_warehouse, "panel Error rate/A"), "errors %")
    assert failing == {key: pytest.approx(errors[key] / n * 100) for key, n in calls.items()}
    # The inventory failure burst shows.
    assert max(v for (_, service), v in failing.items() if service == "inventory") > 10


def test_step_is_whole_windows(shop: Shop, migrated_warehouse: Warehouse) -> None:
    """A 15 s interval is not a multiple of the window: the step falls back to one window."""
    sql = expand(
        QUERIES["panel Request rate/A"],
        {"service": ["cart"], "window_s": [str(WINDOW_S)]},
        interval_s=15,
    )
    rows = migrated_warehouse.query_dicts(sql)
    assert {unix_s(r["time"]) % WINDOW_S for r in rows} == {0}
    assert sum(r["calls/s"] * WINDOW_S for r in rows) == pytest.approx(len(shop.served(["cart"])))


@pytest.mark.parametrize(("panel", "q"), [("p50 latency", 0.5), ("p99 latency", 0.99)])
def test_percentile_series_come_from_merged_sketches(
    panel: str, q: float, shop: Shop, migrated_warehouse: Warehouse
) -> None:
    durations: dict[tuple[int, str], list[int]] = defaultdict(list)
    for span in shop.served():
        key = (step_of(span["end_time_unix_nano"]), span["service_name"])
        durations[key].append(duration_ns(span))
    column = panel.split()[0]
    got = series(run(migrated_warehouse, f"panel {panel}/A"), column)
    assert got.keys() == durations.keys()
    for key, values in durations.items():
        assert got[key] == pytest.approx(clamped_quantile(values, q) / MS, rel=1e-9), key
    # During the incident payment's p99 is several times its p99 before it.
    if q == 0.99:
        before = got[(FROM_S + 60, "payment")]
        during = got[(FROM_S + 150, "payment")]
        assert during > 4 * before


def test_heatmap_buckets_hold_the_calls_by_duration(
    shop: Shop, migrated_warehouse: Warehouse
) -> None:
    rows = run(migrated_warehouse, "panel Latency heatmap/A")
    bounds = [c for c in rows[0] if c != "time"]
    upper = [float(b) for b in bounds]
    lower = [0.0, *upper[:-1]]
    per_step: dict[int, list[float]] = defaultdict(list)
    for span in shop.served():
        per_step[step_of(span["end_time_unix_nano"])].append(duration_ns(span) / MS)
    assert sorted(unix_s(r["time"]) for r in rows) == sorted(per_step)
    for row in rows:
        values = per_step[unix_s(row["time"])]
        assert sum(row[b] for b in bounds) == len(values)
        for bound, low, high in zip(bounds, lower, upper, strict=True):
            # A sketch bin is within 1% of its calls: only calls that close to a bound may
            # count in the neighbouring bucket.
            surely = sum(low * 1.01 < v <= high * 0.99 for v in values)
            maybe = sum(low * 0.99 < v <= high * 1.01 for v in values)
            assert surely <= row[bound] <= maybe, (row["time"], bound)


# --- alerts ---------------------------------------------------------------------------------


def test_alert_table_shows_the_incidents(shop: Shop, migrated_warehouse: Warehouse) -> None:
    rows = run(migrated_warehouse, "panel Alert transitions/A")
    assert len(rows) == len(shop.alerts)
    charge = [
        r for r in rows if r["operation"] == "payment/Charge" and r["rule"] == "latency-p99-anomaly"
    ]
    assert [r["state"] for r in charge] == ["RESOLVED", "FIRING", "PENDING"]  # newest first
    firing = charge[1]
    (event,) = [
        a
        for a in shop.alerts
        if (a["state"], a["service"], a["operation"]) == ("firing", "payment", "Charge")
    ]
    assert firing["unit"] == "ms"
    assert firing["value"] == pytest.approx(event["value"] / MS)
    assert firing["threshold"] == pytest.approx(event["threshold"] / MS)
    assert firing["slowest_trace"] == event["exemplar_trace_ids"][0]
    # The inventory failure burst fires the error-rate rule, in %.
    errors = [r for r in rows if r["rule"] == "error-rate-high" and r["state"] == "FIRING"]
    assert "inventory/CheckStock" in {r["operation"] for r in errors}
    assert all(r["unit"] == "%" and r["value"] > 5 for r in errors)
    # Only the selected services' transitions.
    selected = run(migrated_warehouse, "panel Alert transitions/A", service=["payment"])
    assert {r["operation"] for r in selected} == {"payment/Charge"}


def test_alert_annotations_mark_firing_and_resolved(
    shop: Shop, migrated_warehouse: Warehouse
) -> None:
    rows = run(migrated_warehouse, "annotation Alerts firing and resolved")
    expected = [a for a in shop.alerts if a["state"] in ("firing", "resolved")]
    assert sorted(r["time"] for r in rows) == sorted(a["emitted_at_unix_nano"] for a in expected)
    assert "FIRING latency-p99-anomaly payment/Charge" in {r["text"] for r in rows}


# --- service graph ------------------------------------------------------------------------------


def test_edges_table_equals_tracepipe_query_deps(shop: Shop, migrated_warehouse: Warehouse) -> None:
    rows = run(migrated_warehouse, "panel Calls between services/A")
    summaries = dependency_summary(migrated_warehouse, FROM_S * S, TO_S * S)
    assert [(r["client"], r["server"], r["type"]) for r in rows] == [
        (s.client, s.server, s.connection_type or "-") for s in summaries
    ]
    for row, summary in zip(rows, summaries, strict=True):
        assert_same_red(row, summary)
    pairs = {(r["client"], r["server"]) for r in rows}
    assert {("checkout", "payment"), ("cart", "redis"), ("checkout", "shipping")} <= pairs


def test_node_graph_has_every_service_and_edge(shop: Shop, migrated_warehouse: Warehouse) -> None:
    nodes = run(migrated_warehouse, "panel Service graph/nodes")
    edges = run(migrated_warehouse, "panel Service graph/edges")
    seconds = RUN_S  # the time the edge windows cover, not the range's TO_S - FROM_S
    calls: dict[tuple[str, ...], int] = defaultdict(int)
    for window in shop.edges:
        calls[window.key] += window.stats.count
    assert sorted((e["source"], e["target"], e["mainstat"] * seconds) for e in edges) == [
        (client, server, pytest.approx(n)) for (client, server, _), n in sorted(calls.items())
    ]
    assert len({e["id"] for e in edges}) == len(edges) == len(calls)
    assert {n["id"] for n in nodes} == {name for key in calls for name in key[:2]}
    served = {n["id"]: n["mainstat"] * seconds for n in nodes}
    made = {n["id"]: n["secondarystat"] * seconds for n in nodes}
    for service in ("payment", "frontend", "postgresql"):
        assert served[service] == pytest.approx(sum(n for k, n in calls.items() if k[1] == service))
        assert made[service] == pytest.approx(sum(n for k, n in calls.items() if k[0] == service))


def test_error_origins_table_equals_what_error_rate_alerts_read(
    shop: Shop, migrated_warehouse: Warehouse
) -> None:
    rows = run(migrated_warehouse, "panel Where errors originate/A")
    seen = sorted({(r["service"], r["operation"]) for r in rows})
    for service, operation in seen:
        total, origins = windowed_origins(
            migrated_warehouse, service, operation, FROM_S * S, (TO_S + 1) * S
        )
        mine = [r for r in rows if (r["service"], r["operation"]) == (service, operation)]
        assert [(r["error traces"], r["origin"], r["traces"]) for r in mine] == [
            (total, f"{o.service}/{o.operation}", o.traces) for o in origins
        ]
        assert [r["share %"] for r in mine] == [pytest.approx(o.share * 100) for o in origins]
    # The inventory failure burst: checkout's errors come from inventory.
    placed = [r for r in rows if (r["service"], r["operation"]) == ("checkout", "PlaceOrder")]
    assert placed and placed[0]["origin"].startswith("inventory/"), placed
    inventory = run(migrated_warehouse, "panel Where errors originate/A", service=["inventory"])
    assert inventory and {r["service"] for r in inventory} == {"inventory"}
    assert len(inventory) < len(rows)


# --- traces ---------------------------------------------------------------------------------


def test_the_spans_are_stored_with_copies(shop: Shop, migrated_warehouse: Warehouse) -> None:
    """Else the span panels' answers would not show they read each span once."""
    rows = migrated_warehouse.query(f"SELECT count() FROM {OTEL_TRACES}")[0][0]
    assert rows >= len(shop.spans) * 3 // 2


def test_trace_search_lists_the_slowest_traces_first(
    shop: Shop, migrated_warehouse: Warehouse
) -> None:
    traces = shop.traces()
    slowest = sorted(traces, key=lambda t: (-trace_duration_ms(traces[t]), t))[:100]
    rows = run(migrated_warehouse, "panel Trace search/A")
    assert [r["trace_id"] for r in rows] == slowest
    first = traces[slowest[0]]
    assert rows[0]["duration ms"] == pytest.approx(trace_duration_ms(first), abs=1e-6)
    assert rows[0]["spans"] == len(first)
    (root,) = [s for s in first if not s["parent_span_id"]]
    assert (rows[0]["root_service"], rows[0]["root_operation"]) == (
        root["service_name"],
        root["name"],
    )
    assert "payment" in rows[0]["services"]  # the incident made checkouts the slowest


def test_trace_search_filters(shop: Shop, migrated_warehouse: Warehouse) -> None:
    traces = shop.traces()
    longer = run(migrated_warehouse, "panel Trace search/A", min_duration_ms=["250"])
    assert longer and len(longer) < 100
    assert {r["trace_id"] for r in longer} == {
        t for t, spans in traces.items() if trace_duration_ms(spans) >= 250
    }
    charged = run(
        migrated_warehouse, "panel Trace search/A", service=["payment"], span_name=["charge"]
    )
    assert charged and all("payment" in r["services"] for r in charged)
    failing = run(migrated_warehouse, "panel Trace search/A", status=["error"])
    with_errors = {
        t for t, spans in traces.items() if any(s["status_code"] == "ERROR" for s in spans)
    }
    assert failing and {r["trace_id"] for r in failing} <= with_errors
    assert len(failing) == min(100, len(with_errors))
    assert all(r["errors"] > 0 for r in failing)
    quoted = run(migrated_warehouse, "panel Trace search/A", span_name=["it's"])
    assert quoted == []


def test_trace_view_returns_every_span_of_the_trace(
    shop: Shop, migrated_warehouse: Warehouse
) -> None:
    traces = shop.traces()
    trace_id = max(traces, key=lambda t: trace_duration_ms(traces[t]))
    rows = run(migrated_warehouse, "panel Trace/A", trace_id=[trace_id])
    spans = {s["span_id"]: s for s in traces[trace_id]}
    assert sorted(r["spanID"] for r in rows) == sorted(spans)
    for row in rows:
        span = spans[row["spanID"]]
        assert row["traceID"] == trace_id
        assert row["parentSpanID"] == span["parent_span_id"]
        assert (row["serviceName"], row["operationName"]) == (span["service_name"], span["name"])
        assert row["startTime"] == span["start_time_unix_nano"]
        assert row["duration"] == pytest.approx(duration_ns(span) / MS)
        assert row["statusCode"] == (2 if span["status_code"] == "ERROR" else 0)
        tags = {t["key"]: t["value"] for t in row["tags"]}
        assert tags == {
            **attribute_map(span["attributes"]),
            SOURCE_FORMAT_ATTRIBUTE: span["source_format"],
        }
    assert run(migrated_warehouse, "panel Trace/A", trace_id=["0" * 32]) == []
