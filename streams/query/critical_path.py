"""Critical-path self time per service and operation over a time range: where traces spend
their time, for an alert's attribution."""

from __future__ import annotations

from streams.query import Reader, quote, time_range


def self_time_per_trace(
    reader: Reader, service: str, since_ns: int, until_ns: int
) -> dict[tuple[str, str], float]:
    """Mean critical-path self time (ns) per trace of each (service, operation), over the traces
    that started in [since, until) with `service` on their critical path."""
    population = (
        "SELECT TraceId FROM tracepipe_critical_path FINAL "
        f"WHERE ServiceName = {quote(service)} AND {time_range('Start', since_ns, until_ns)}"
    )
    (counted,) = reader.query_dicts(f"SELECT uniqExact(TraceId) AS traces FROM ({population})")
    traces = int(counted["traces"])
    if traces == 0:
        return {}
    rows = reader.query_dicts(
        "SELECT ServiceName AS service, SpanName AS operation, sum(SelfTimeNs) AS self_ns "
        f"FROM tracepipe_critical_path FINAL WHERE TraceId IN ({population}) "
        "GROUP BY service, operation"
    )
    return {(r["service"], r["operation"]): int(r["self_ns"]) / traces for r in rows}
