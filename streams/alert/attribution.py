"""Where to look: which service/operation's critical-path self time grew most in an incident,
and, for an error-rate alert, where its operation's errors originated.

The caller reads, from ClickHouse's critical paths, the mean self time per trace of every
(service, operation) in the breaching window and in the baseline windows before the incident;
`attribute` ranks the increases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from streams.query import Reader
from streams.query.critical_path import self_time_per_trace
from streams.query.errors import (
    OriginShare,
    WindowedOrigin,
    error_origin_summary,
    windowed_origins,
)
from streams.query.windows import slow_trace_ids

TOP = 5
"""Attribution entries an alert carries."""


def attribute(
    current: Mapping[tuple[str, str], float],
    baseline: Mapping[tuple[str, str], float],
    limit: int = TOP,
) -> list[dict[str, Any]]:
    """alert.avsc Attribution records: the `limit` largest positive increases of mean self time
    per trace (ns), largest first, each with its share of the sum of every positive increase.

    An operation missing from `baseline` had no self time there (its whole time is increase);
    one missing from `current` can only have shrunk and is left out.
    """
    increases = [
        (value - baseline.get(key, 0.0), key, value)
        for key, value in current.items()
        if value - baseline.get(key, 0.0) > 0
    ]
    total = sum(increase for increase, _, _ in increases)
    # Largest increase first; ties in (service, operation) order, for a stable output.
    increases.sort(key=lambda item: (-item[0], item[1]))
    return [
        {
            "service": service,
            "operation": operation,
            "baseline_self_time_ns": float(baseline.get((service, operation), 0.0)),
            "current_self_time_ns": float(value),
            "increase_ns": float(increase),
            "share": increase / total,
        }
        for increase, (service, operation), value in increases[:limit]
    ]


def read_attribution(
    reader: Reader, event: dict[str, Any], window_ns: int, baseline_windows: int, per_window: int
) -> list[dict[str, Any]]:
    """A firing event's attribution: the critical-path self time of the breaching operation's
    slow traces (the window's exemplars) against that of its slow traces in the
    `baseline_windows` windows before the incident (their `per_window` slowest exemplars each).

    Over the breaching operation's own slow traces, not every trace its service is on: a caller
    with many other operations would dilute the increase, and a high percentile is made by the
    slow calls. Empty when the window has no exemplar or ClickHouse no critical path for them.
    """
    baseline_end = event["starts_at_unix_nano"]
    baseline_ids = slow_trace_ids(
        reader,
        event["service"],
        event["operation"],
        baseline_end - baseline_windows * window_ns,
        baseline_end,
        per_window,
    )
    current = self_time_per_trace(reader, event["exemplar_trace_ids"])
    baseline = self_time_per_trace(reader, baseline_ids)
    return attribute(current, baseline)


def read_error_origins(
    reader: Reader, event: dict[str, Any], limit: int = TOP
) -> list[dict[str, Any]]:
    """An error-rate event's origins (alert.avsc ErrorOriginShare records), most traces first;
    empty for other signals.

    From the error-origin windows of its operation over the incident (from its first breaching
    window through this one): those already final. An origin window is final a trace-emission
    delay after its latency window, so when the incident's first window is the breaching one
    (a rule `for: 1`) none may be yet: then from the stored per-trace origins of its service's
    error traces that started in the breaching window (streams.query.errors, as `tracepipe
    query errors` counts them)."""
    if event["signal"] != "error_rate":
        return []
    _, windowed = windowed_origins(
        reader,
        event["service"],
        event["operation"],
        event["starts_at_unix_nano"] or event["window_start_unix_nano"],
        event["window_end_unix_nano"],
    )
    origins: Sequence[WindowedOrigin | OriginShare] = windowed
    if not windowed:
        _, origins = error_origin_summary(
            reader,
            event["service"],
            event["window_start_unix_nano"],
            event["window_end_unix_nano"],
        )
    return [
        {
            "service": o.service,
            "operation": o.operation,
            "traces": o.traces,
            "share": o.share,
            "propagated_to": list(o.propagated_to),
        }
        for o in origins[:limit]
    ]
