"""Critical-path self time per service and operation over chosen traces: where those traces
spend their time, for an alert's attribution."""

from __future__ import annotations

from collections.abc import Collection

from streams.query import Reader, quote
from streams.sink.traces import CRITICAL_PATH


def self_time_per_trace(reader: Reader, trace_ids: Collection[str]) -> dict[tuple[str, str], float]:
    """Mean critical-path self time (ns) per trace of each (service, operation), over the traces
    of `trace_ids` that have a stored critical path (empty when none has)."""
    if not trace_ids:
        return {}
    chosen = f"TraceId IN ({', '.join(quote(t) for t in sorted(set(trace_ids)))})"
    (counted,) = reader.query_dicts(
        f"SELECT uniqExact(TraceId) AS traces FROM {CRITICAL_PATH} WHERE {chosen}"
    )
    traces = int(counted["traces"])
    if traces == 0:
        return {}
    rows = reader.query_dicts(
        "SELECT ServiceName AS service, SpanName AS operation, sum(SelfTimeNs) AS self_ns "
        f"FROM {CRITICAL_PATH} FINAL WHERE {chosen} GROUP BY service, operation"
    )
    return {(r["service"], r["operation"]): int(r["self_ns"]) / traces for r in rows}
