"""`tracepipe query latency` and `tracepipe query deps`: stored windows summed over a time range.

Counts, errors and sums add across windows; percentiles do not. They come from one sketch
per row of the summary, built from ClickHouse's ``sumMap(SketchKeys, SketchCounts)`` over every
window in the range (DDSketch bins add exactly), never from averaging the windows' P99, and
are clamped to the exact min and max of those windows. A window is in the range when its start
is (``since <= WindowStart < until``).

Rates are calls over the time the table's windows in the range cover (`Coverage`: the first
window's start to the last one's end), not over the range asked for: an hour's range over two
minutes of data is a rate over two minutes. Every row of a summary shares that denominator, so
rates compare like calls do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streams.aggregate.sketch import LatencySketch
from streams.config import Settings
from streams.errors import TracepipeError, WarehouseError
from streams.query import Reader, quote, time_range
from streams.query.table import format_ms, format_quantity
from streams.query.timestamps import format_duration, format_time
from streams.sink.windows import EDGES, LATENCY

SLOWEST_TRACES = 5
"""How many of the slowest exemplar trace ids a latency summary lists."""

# Sums, extremes and merged sketch bins of the selected windows (both tables have the columns).
_MERGED_STATS = (
    "count() AS windows, sum(Count) AS calls, sum(Errors) AS errors, "
    "sum(DurationSum) AS duration_sum, min(DurationMin) AS duration_min, "
    "max(DurationMax) AS duration_max, "
    "min(SketchRelativeAccuracy) AS accuracy, max(SketchRelativeAccuracy) AS accuracy_max, "
    "sum(SketchZeroCount) AS zero_count, sumMap(SketchKeys, SketchCounts) AS bins"
)


@dataclass(frozen=True)
class Coverage:
    """The time a table's windows in a range cover: the first window's start to the last one's
    end (unix ns), the denominator of every rate read from them."""

    start_ns: int
    end_ns: int

    @property
    def seconds(self) -> float:
        """The covered time in seconds."""
        return (self.end_ns - self.start_ns) / 1e9

    def describe(self) -> str:
        """The header that says what rates are over, e.g. ``rates over 1m40s of data,
        2026-01-02 10:01:00Z-10:02:40Z`` (the end's date only when it differs)."""
        start, end = format_time(self.start_ns), format_time(self.end_ns)
        if start[:10] == end[:10]:
            end = end[11:]
        return f"rates over {format_duration(self.end_ns - self.start_ns)} of data, {start}-{end}"


@dataclass(frozen=True)
class SlowTrace:
    """An exemplar: a trace holding one of the slowest calls of the range."""

    trace_id: str
    duration_ns: int


@dataclass(frozen=True)
class LatencySummary:
    """RED numbers of one service's operation and span kind over a range, status classes merged."""

    service: str
    operation: str
    kind: str
    windows: int
    calls: int
    errors: int
    error_rate: float
    throughput_per_s: float
    mean_ns: float
    min_ns: int
    max_ns: int
    p50_ns: float
    p90_ns: float
    p95_ns: float
    p99_ns: float
    relative_accuracy: float
    slowest: tuple[SlowTrace, ...]
    coverage: Coverage
    """What throughput_per_s is over: the time the range's windows cover."""


@dataclass(frozen=True)
class EdgeSummary:
    """Calls from `client` to `server` over a range (connection_type "" is request/response)."""

    client: str
    server: str
    connection_type: str
    windows: int
    calls: int
    errors: int
    error_rate: float
    throughput_per_s: float
    p50_ns: float
    p99_ns: float
    relative_accuracy: float
    coverage: Coverage
    """What throughput_per_s is over: the time the range's windows cover."""


def arrival_lag(settings: Settings, signal: str) -> str:
    """When the windows of `signal` ("latency" or "edges") appear after their spans, in words."""
    agg = settings.aggregation
    lag = (
        f"window + allowed lateness ({agg.window_ms / 1000:g} s + "
        f"{agg.allowed_lateness_ms / 1000:g} s)"
    )
    if signal == "edges":
        trace_idle_s = settings.assembly.trace_idle_ms / 1000
        return f"edges appear after trace idle ({trace_idle_s:g} s) + {lag}"
    return f"windows appear after {lag}"


def query_table(reader: Reader, table: str, sql: str) -> list[dict[str, Any]]:
    """Run `sql`; a missing `table` becomes an error that says how to create it."""
    try:
        return reader.query_dicts(sql)
    except WarehouseError as err:
        tables = reader.query_dicts(
            "SELECT count() AS n FROM system.tables "
            f"WHERE database = currentDatabase() AND name = {quote(table)}"
        )
        if tables and int(tables[0]["n"]):
            raise
        raise WarehouseError(
            f"the warehouse has no table {table}: run `tracepipe db migrate` (a worker applies "
            "the migrations when it starts)"
        ) from err


def data_coverage(reader: Reader, table: str, since_ns: int, until_ns: int) -> Coverage | None:
    """The time `table`'s windows that start in [since_ns, until_ns) cover, every key's windows
    together (None: no window)."""
    # No FINAL: a window stored twice has the same bounds.
    rows = query_table(
        reader,
        table,
        "SELECT count() AS windows, toUnixTimestamp64Nano(min(WindowStart)) AS start_ns, "
        f"toUnixTimestamp64Nano(max(WindowEnd)) AS end_ns FROM {table} "
        f"WHERE {time_range('WindowStart', since_ns, until_ns)}",
    )
    # An aggregate answers one row; a worker's API that found no table answers none.
    if not rows or not int(rows[0]["windows"]):
        return None
    return Coverage(int(rows[0]["start_ns"]), int(rows[0]["end_ns"]))


def _merged_sketch(row: dict[str, Any], what: str) -> LatencySketch:
    """The sketch of every window a summary row merged (its `bins`, `zero_count`, `accuracy`)."""
    if row["accuracy"] != row["accuracy_max"]:
        raise TracepipeError(
            f"the windows of {what} mix sketch relative accuracies {row['accuracy']} and "
            f"{row['accuracy_max']} (aggregation.relative_accuracy changed): their bins cannot "
            "be merged; query a range on one side of the change with --since/--until"
        )
    keys, counts = row["bins"]
    return LatencySketch.from_bins(float(row["accuracy"]), float(row["zero_count"]), keys, counts)


def _quantiles(row: dict[str, Any], sketch: LatencySketch, *qs: float) -> list[float]:
    """The row's merged-sketch quantiles, clamped to the exact min and max of its windows."""
    observed = (int(row["duration_min"]), int(row["duration_max"]))
    return [sketch.quantile(q, observed) for q in qs]


def _rates(row: dict[str, Any], coverage: Coverage) -> tuple[int, int, float, float]:
    """(calls, errors, error rate, calls per second over the covered time) of a summary row."""
    calls, errors = int(row["calls"]), int(row["errors"])
    seconds = coverage.seconds
    return (
        calls,
        errors,
        errors / calls if calls else 0.0,
        calls / seconds if seconds > 0 else 0.0,
    )


def _slowest_traces(
    reader: Reader, where: str
) -> dict[tuple[str, str, str], tuple[SlowTrace, ...]]:
    """(service, operation, kind) -> its slowest distinct exemplar traces, slowest first."""
    rows = query_table(
        reader,
        LATENCY,
        "SELECT ServiceName AS service, SpanName AS operation, SpanKind AS kind, trace_id, "
        f"max(duration) AS duration_ns FROM {LATENCY} FINAL "
        "ARRAY JOIN ExemplarTraceIds AS trace_id, ExemplarDurations AS duration "
        f"WHERE {where} GROUP BY service, operation, kind, trace_id "
        f"ORDER BY duration_ns DESC, trace_id LIMIT {SLOWEST_TRACES} BY service, operation, kind",
    )
    slowest: dict[tuple[str, str, str], list[SlowTrace]] = {}
    for r in rows:
        slow = SlowTrace(str(r["trace_id"]), int(r["duration_ns"]))
        key = (str(r["service"]), str(r["operation"]), str(r["kind"]))
        slowest.setdefault(key, []).append(slow)
    return {key: tuple(traces) for key, traces in slowest.items()}


def slow_trace_ids(
    reader: Reader, service: str, operation: str, since_ns: int, until_ns: int, per_window: int
) -> list[str]:
    """The `per_window` slowest exemplar traces of each window of `service`'s `operation` (every
    kind and status class) that starts in [since_ns, until_ns), window by window, each once: the
    slow traces an alert's baseline compares the breaching window's exemplars with."""
    if per_window <= 0:
        return []
    rows = query_table(
        reader,
        LATENCY,
        "SELECT WindowStart AS window, trace_id, max(duration) AS duration_ns "
        f"FROM {LATENCY} FINAL "
        "ARRAY JOIN ExemplarTraceIds AS trace_id, ExemplarDurations AS duration "
        f"WHERE ServiceName = {quote(service)} AND SpanName = {quote(operation)} "
        f"AND {time_range('WindowStart', since_ns, until_ns)} GROUP BY window, trace_id "
        f"ORDER BY window, duration_ns DESC, trace_id LIMIT {int(per_window)} BY window",
    )
    return list(dict.fromkeys(str(r["trace_id"]) for r in rows))


def _latency_row_summary(
    row: dict[str, Any],
    service: str,
    operation: str,
    kind: str,
    coverage: Coverage,
    slowest: tuple[SlowTrace, ...],
) -> LatencySummary:
    """The LatencySummary of one merged row of tracepipe_latency windows."""
    sketch = _merged_sketch(row, f"{service}: {operation} ({kind})")
    calls, errors, error_rate, throughput = _rates(row, coverage)
    p50, p90, p95, p99 = _quantiles(row, sketch, 0.5, 0.9, 0.95, 0.99)
    return LatencySummary(
        service=service,
        operation=operation,
        kind=kind,
        windows=int(row["windows"]),
        calls=calls,
        errors=errors,
        error_rate=error_rate,
        throughput_per_s=throughput,
        mean_ns=int(row["duration_sum"]) / calls if calls else 0.0,
        min_ns=int(row["duration_min"]),
        max_ns=int(row["duration_max"]),
        p50_ns=p50,
        p90_ns=p90,
        p95_ns=p95,
        p99_ns=p99,
        relative_accuracy=sketch.relative_accuracy,
        slowest=slowest,
        coverage=coverage,
    )


def latency_summary(
    reader: Reader, service: str | None, operation: str | None, since_ns: int, until_ns: int
) -> list[LatencySummary]:
    """Per operation and span kind of `service` (every service if None; only `operation` if
    given), the windows that start in [since_ns, until_ns) merged; ordered by service,
    operation, then kind. Empty: no windows."""
    conditions = [time_range("WindowStart", since_ns, until_ns)]
    if service is not None:
        conditions.append(f"ServiceName = {quote(service)}")
    if operation is not None:
        conditions.append(f"SpanName = {quote(operation)}")
    where = " AND ".join(conditions)
    rows = query_table(
        reader,
        LATENCY,
        "SELECT ServiceName AS service, SpanName AS operation, SpanKind AS kind, "
        f"{_MERGED_STATS} FROM {LATENCY} FINAL WHERE {where} "
        "GROUP BY service, operation, kind ORDER BY service, operation, kind",
    )
    coverage = data_coverage(reader, LATENCY, since_ns, until_ns)
    if not rows or coverage is None:
        return []
    slowest = _slowest_traces(reader, where)
    summaries: list[LatencySummary] = []
    for row in rows:
        key = (str(row["service"]), str(row["operation"]), str(row["kind"]))
        summaries.append(_latency_row_summary(row, *key, coverage, slowest.get(key, ())))
    return summaries


def service_summary(reader: Reader, since_ns: int, until_ns: int) -> list[LatencySummary]:
    """RED per service over [since_ns, until_ns): its SERVER and CONSUMER spans (the calls it
    serves), every operation merged; operation is "*" and kind "Server,Consumer"."""
    where = (
        f"SpanKind IN ('Server', 'Consumer') AND {time_range('WindowStart', since_ns, until_ns)}"
    )
    rows = query_table(
        reader,
        LATENCY,
        f"SELECT ServiceName AS service, {_MERGED_STATS} FROM {LATENCY} FINAL WHERE {where} "
        "GROUP BY service ORDER BY service",
    )
    coverage = data_coverage(reader, LATENCY, since_ns, until_ns)
    if not rows or coverage is None:
        return []
    return [
        _latency_row_summary(row, str(row["service"]), "*", "Server,Consumer", coverage, ())
        for row in rows
    ]


def dependency_summary(reader: Reader, since_ns: int, until_ns: int) -> list[EdgeSummary]:
    """Per edge (client, server, connection type), the windows that start in
    [since_ns, until_ns) merged; ordered by client, server, type. Empty: no windows."""
    rows = query_table(
        reader,
        EDGES,
        f"SELECT Client AS client, Server AS server, ConnectionType AS connection_type, "
        f"{_MERGED_STATS} FROM {EDGES} FINAL WHERE {time_range('WindowStart', since_ns, until_ns)} "
        "GROUP BY client, server, connection_type ORDER BY client, server, connection_type",
    )
    coverage = data_coverage(reader, EDGES, since_ns, until_ns)
    if not rows or coverage is None:
        return []
    summaries: list[EdgeSummary] = []
    for row in rows:
        client, server = str(row["client"]), str(row["server"])
        sketch = _merged_sketch(row, f"{client} -> {server}")
        calls, errors, error_rate, throughput = _rates(row, coverage)
        p50, p99 = _quantiles(row, sketch, 0.5, 0.99)
        summaries.append(
            EdgeSummary(
                client=client,
                server=server,
                connection_type=str(row["connection_type"]),
                windows=int(row["windows"]),
                calls=calls,
                errors=errors,
                error_rate=error_rate,
                throughput_per_s=throughput,
                p50_ns=p50,
                p99_ns=p99,
                relative_accuracy=sketch.relative_accuracy,
                coverage=coverage,
            )
        )
    return summaries


def latency_rows(summaries: Sequence[LatencySummary]) -> list[dict[str, str]]:
    """The table `tracepipe query latency` prints: one row per summary, durations in ms."""
    return [
        {
            "service": s.service,
            "operation": s.operation,
            "kind": s.kind,
            "calls": str(s.calls),
            "errors": str(s.errors),
            "err%": format_quantity(s.error_rate * 100),
            "rate/s": format_quantity(s.throughput_per_s),
            "p50 ms": format_ms(s.p50_ns),
            "p90 ms": format_ms(s.p90_ns),
            "p95 ms": format_ms(s.p95_ns),
            "p99 ms": format_ms(s.p99_ns),
            "max ms": format_ms(s.max_ns),
            "slowest trace": s.slowest[0].trace_id if s.slowest else "",
        }
        for s in summaries
    ]


def dependency_rows(summaries: Sequence[EdgeSummary]) -> list[dict[str, str]]:
    """The table `tracepipe query deps` prints: one row per edge, durations in ms."""
    return [
        {
            "client -> server": f"{s.client} -> {s.server}",
            "type": s.connection_type or "-",
            "calls": str(s.calls),
            "err%": format_quantity(s.error_rate * 100),
            "rate/s": format_quantity(s.throughput_per_s),
            "p50 ms": format_ms(s.p50_ns),
            "p99 ms": format_ms(s.p99_ns),
        }
        for s in summaries
    ]
