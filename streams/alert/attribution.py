"""Where to look: which service/operation's critical-path self time grew most in an incident.

The caller reads, from ClickHouse's critical paths, the mean self time per trace of every
(service, operation) in the breaching window and in the baseline windows before the incident;
`attribute` ranks the increases.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
