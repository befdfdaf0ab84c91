"""Cells for people: times as ISO 8601, durations in ms, chosen by the schema's column names."""

from __future__ import annotations

import re
from pathlib import Path

from streams.query.table import DURATION_COLUMNS, TIME_COLUMNS, readable_rows, rfc3339

ROOT = Path(__file__).parents[3]
T0 = 1_767_323_045_000_000_000  # 2026-01-02T03:04:05Z


def test_rfc3339_keeps_nanoseconds_without_trailing_zeros() -> None:
    assert rfc3339(T0) == "2026-01-02T03:04:05Z"
    assert rfc3339(T0 + 250_000_000) == "2026-01-02T03:04:05.25Z"
    assert rfc3339(T0 + 1) == "2026-01-02T03:04:05.000000001Z"


def test_readable_rows_converts_times_and_durations_only() -> None:
    rows = [
        {
            "Timestamp": T0,
            "Events.Timestamp": [T0],
            "DurationNs": 1_500_000,
            "p99_duration_ns": 2_000_000_000,
            "n": 7,
            "name": "x",
            "DurationMax": None,
            "flag": True,
            "second": "2026-01-02 03:04:05+00:00",  # a DateTime, as a worker's /api/query sends it
            "label": "2026-01-02 03:04:05",
        }
    ]
    assert readable_rows(rows) == [
        {
            "Timestamp": "2026-01-02T03:04:05Z",
            "Events.Timestamp": ["2026-01-02T03:04:05Z"],
            "DurationNs ms": "1.50",
            "p99_duration_ns ms": "2000",
            "n": 7,
            "name": "x",
            "DurationMax ms": None,
            "flag": True,
            "second": "2026-01-02T03:04:05Z",
            "label": "2026-01-02 03:04:05",
        }
    ]


def test_time_and_duration_columns_are_the_schemas() -> None:
    ddl = "\n".join(p.read_text() for p in (ROOT / "schemas" / "clickhouse").glob("*.sql"))
    times = set(re.findall(r"`?(\w+)`?\s+DateTime64\(9\)", ddl))
    durations = set(re.findall(r"`?(\w*Duration\w*)`?\s+UInt64", ddl))
    assert times == {c.removeprefix("Events.") for c in TIME_COLUMNS}
    assert durations == DURATION_COLUMNS
