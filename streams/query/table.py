"""Tables: plain aligned text for query results (the CLI, the demo's live view) and Markdown
for documents (README's configuration table, benchmark results)."""

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
