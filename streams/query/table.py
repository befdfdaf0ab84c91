"""Tables: plain aligned text for query results (the CLI, the demo's live view) and Markdown
for documents (README's configuration table, benchmark results)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

TIME_COLUMNS = frozenset(
    {
        "Timestamp",
        "Events.Timestamp",
        "Start",
        "End",
        "EmittedAt",
        "WindowStart",
        "WindowEnd",
        "StartsAt",
        "EndsAt",
    }
)
"""The DateTime64(9) columns of tracepipe's tables (results hold them as unix ns)."""

DURATION_COLUMNS = frozenset(
    {"Duration", "DurationNs", "TraceDurationNs", "DurationSum", "DurationMin", "DurationMax"}
)
"""The columns of tracepipe's tables that hold a duration in ns."""

# A DateTime value as a worker's /api/query sends it (json.dumps' default=str).
_SENT_DATETIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\+00:00").fullmatch


def render_table(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as an aligned text table (header, rule, rows)."""
    if not rows:
        return "(no rows)"
    columns = list(rows[0])
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as a GitHub-flavoured Markdown table (columns from the first row's keys)."""
    if not rows:
        return "(no rows)"
    columns = list(rows[0])

    def line(cells: Sequence[str]) -> str:
        # A pipe inside a cell would end it early.
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    lines = [line(columns), "|" + "---|" * len(columns)]
    lines += [line([str(row.get(c, "")) for c in columns]) for row in rows]
    return "\n".join(lines)


def format_quantity(value: float) -> str:
    """A quantity with three or four significant digits for a table cell; 0 as plain 0."""
    size = abs(value)
    if size == 0:
        return "0"
    if size >= 100:
        return f"{value:.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def format_ms(duration_ns: float) -> str:
    """A duration in ns as milliseconds for a table cell (format_quantity's digits)."""
    return format_quantity(duration_ns / 1e6)


def rfc3339(time_unix_nano: int) -> str:
    """A unix-ns time as ISO 8601 / RFC 3339 in UTC, fractional seconds without trailing zeros
    (as Go's RFC3339Nano writes them): `2026-11-21T19:03:10.25Z`."""
    seconds, nanos = divmod(time_unix_nano, 1_000_000_000)
    text = f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S}"
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + "Z"


def _is_duration(column: str) -> bool:
    return column in DURATION_COLUMNS or column.lower().endswith("duration_ns")


def _readable(value: Any, convert: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return convert(value)
    if isinstance(value, list):
        return [_readable(v, convert) for v in value]
    return value


def readable_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Query rows for people: times (TIME_COLUMNS, any datetime, also as a worker sends it) as
    ISO 8601 UTC; durations (DURATION_COLUMNS, names ending in duration_ns) in ms, the column
    then named "... ms"."""
    readable: list[dict[str, Any]] = []
    for row in rows:
        out: dict[str, Any] = {}
        for column, value in row.items():
            if isinstance(value, str) and _SENT_DATETIME(value):
                value = datetime.fromisoformat(value)
            if isinstance(value, datetime):
                out[column] = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
            elif column in TIME_COLUMNS:
                out[column] = _readable(value, rfc3339)
            elif _is_duration(column):
                out[f"{column} ms"] = _readable(value, format_ms)
            else:
                out[column] = value
        readable.append(out)
    return readable
