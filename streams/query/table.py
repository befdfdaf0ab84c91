"""Plain aligned text tables for query results (the CLI and the demo's live view)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


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
