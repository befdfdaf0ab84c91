"""A trace laid out for its page: rows in tree order on skew-adjusted times, the critical path's
stretches on each, which subtrees a large trace opens with collapsed, and the compact JSON the
page's script draws the rows from (`waterfall_data`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streams.assemble.critical_path import CriticalPathSelfTime, compute_critical_path
from streams.assemble.error_origins import ErrorOrigin, error_origins
from streams.assemble.skew import adjust_clock_skew, adjusted_spans
from streams.assemble.structure import analyze_structure
from streams.model.span import Span
from streams.query.table import format_ms
from streams.query.waterfall import tree_order
from streams.query.web.markup import (
    trace_url,
)
from streams.sink.spans import OTEL_TRACES_COLUMNS

VISIBLE_ROWS = 200
"""A larger trace opens with its subtrees collapsed below the deepest level that keeps at most
this many rows showing (a 5,000-span trace stays quick to scroll and find in)."""

ROW_FIELDS = (
    "span_id",
    "depth",
    "service",
    "name",
    "left_pct",
    "width_pct",
    "duration_ms",
    "classes",
    "critical",
    "children",
)
"""A row of `waterfall_data`, in order: `service` and `name` index its services and names,
`critical` is the flattened (left %, width %) stretches, `children` 0 for a leaf, 1 for a parent,
2 for a parent collapsed when the page opens; `classes` of the row, besides ``span``."""

DETAIL_COLUMNS = (
    "ResourceAttributes",
    "SpanAttributes",
    "ScopeName",
    "ScopeVersion",
    "TraceState",
    "Events.Timestamp",
    "Events.Name",
    "Events.Attributes",
)
"""otel_traces columns only a span's details show: the page reads the others
(`LAYOUT_COLUMNS`, links included for the critical path's follows-from rule)."""
LAYOUT_COLUMNS = tuple(c for c in OTEL_TRACES_COLUMNS if c not in DETAIL_COLUMNS)


@dataclass(frozen=True)
class WaterfallRow:
    """One span's row: its depth in the tree, bar and critical-path stretches in % of the trace."""

    span: Span
    """The span on skew-adjusted times."""
    depth: int
    left_pct: float
    width_pct: float
    critical: tuple[tuple[float, float], ...]
    """(left %, width %) of each stretch of this span on the critical path."""
    critical_ns: int
    """This span's own time on the critical path."""


@dataclass(frozen=True)
class Waterfall:
    """A trace laid out for the page: rows in tree order and the trace's extent."""

    rows: tuple[WaterfallRow, ...]
    start_ns: int
    duration_ns: int
    skew_adjusted: bool
    self_time: tuple[CriticalPathSelfTime, ...]
    """Critical-path self time per (service, operation), largest first."""
    warnings: tuple[str, ...]
    """Structure warnings (orphans, several roots, duplicate ids, cycles)."""
    origins: tuple[ErrorOrigin, ...] = ()
    """Where the trace's errors began (streams/assemble/error_origins.py), earliest first."""


def layout_waterfall(spans: Sequence[Span]) -> Waterfall:
    """Rows for every unique span: depth-first, children by start, on skew-adjusted times."""
    structure = analyze_structure(spans)
    adjustment = adjust_clock_skew(structure)
    shown = adjusted_spans(structure, adjustment)
    path = compute_critical_path(structure, adjustment)
    if not shown:
        return Waterfall((), 0, 0, False, (), tuple(structure.warnings))
    origins = tuple(error_origins(structure))
    start = min(s["start_time_unix_nano"] for s in shown)
    end = max(s["end_time_unix_nano"] for s in shown)
    total = max(end - start, 1)

    def pct(ns: int) -> float:
        return ns * 100 / total

    stretches: dict[str, list[tuple[float, float]]] = {}
    on_path_ns: dict[str, int] = {}
    for seg in path.segments:
        left = seg["start_time_unix_nano"] - start
        stretches.setdefault(seg["span_id"], []).append((pct(left), pct(seg["self_time_ns"])))
        on_path_ns[seg["span_id"]] = on_path_ns.get(seg["span_id"], 0) + seg["self_time_ns"]
    rows = tuple(
        WaterfallRow(
            span=span,
            depth=depth,
            left_pct=pct(span["start_time_unix_nano"] - start),
            width_pct=pct(max(0, span["end_time_unix_nano"] - span["start_time_unix_nano"])),
            critical=tuple(stretches.get(span["span_id"], ())),
            critical_ns=on_path_ns.get(span["span_id"], 0),
        )
        for depth, span in tree_order(shown)
    )
    return Waterfall(
        rows,
        start,
        end - start,
        adjustment.adjusted,
        tuple(path.self_time),
        tuple(structure.warnings),
        origins,
    )


def initially_collapsed(
    rows: Sequence[WaterfallRow], open_span: str = "", visible: int = VISIBLE_ROWS
) -> tuple[set[int], set[int], set[int]]:
    """Indexes of the rows with children, of those collapsed when the page opens, and of the
    rows hidden under them.

    Up to `visible` rows, nothing is collapsed. Beyond, the rows with children at the deepest
    level L that keeps at most `visible` rows at depths <= L start collapsed (the roots always
    show); the ancestors of `open_span` stay expanded so the span it opens is in sight.
    """
    depths = [row.depth for row in rows]
    parents = {i for i in range(len(rows) - 1) if depths[i + 1] > depths[i]}
    if len(rows) <= visible:
        return parents, set(), set()
    per_depth = Counter(depths)
    level, shown = 0, 0
    for depth in sorted(per_depth):
        shown += per_depth[depth]
        if shown > visible:
            break
        level = depth
    collapsed = {i for i in parents if depths[i] == level}
    opened = [i for i, row in enumerate(rows) if row.span["span_id"] == open_span]
    if opened:
        reach = depths[opened[0]]
        for i in range(opened[0] - 1, -1, -1):
            if depths[i] < reach:
                collapsed.discard(i)
                reach = depths[i]
    hidden: set[int] = set()
    hide_below = -1
    for i, depth in enumerate(depths):
        if hide_below >= 0 and depth > hide_below:
            hidden.add(i)
            continue
        hide_below = depth if i in collapsed else -1
    return parents, collapsed, hidden


def waterfall_data(
    trace_id: str, waterfall: Waterfall, colours: Mapping[str, str], open_span: str = ""
) -> dict[str, Any]:
    """What the page's script draws the waterfall from: one compact row per span (ROW_FIELDS),
    services and operation names once each, the span to open, and where the script fetches a
    span's details and the texts find searches."""
    origin_ids = {o["span_id"] for o in waterfall.origins}
    parents, collapsed, _ = initially_collapsed(waterfall.rows, open_span)
    services = list(colours)
    service_index = {s: i for i, s in enumerate(services)}
    names: dict[str, int] = {}
    rows: list[list[Any]] = []
    for index, row in enumerate(waterfall.rows):
        span = row.span
        classes = []
        if row.critical:
            classes.append("critical")
        if span["status_code"] == "ERROR":
            classes.append("error")
        if span["span_id"] in origin_ids:
            classes.append("error-origin")
        rows.append(
            [
                span["span_id"],
                row.depth,
                service_index[span["service_name"]],
                names.setdefault(span["name"], len(names)),
                round(row.left_pct, 4),
                round(row.width_pct, 4),
                format_ms(span["end_time_unix_nano"] - span["start_time_unix_nano"]),
                " ".join(classes),
                [round(x, 4) for stretch in row.critical for x in stretch],
                2 if index in collapsed else 1 if index in parents else 0,
            ]
        )
    return {
        "services": [[s, colours[s]] for s in services],
        "names": list(names),
        "rows": rows,
        "open": open_span,
        "span_url": f"{trace_url(trace_id)}/span/",
        "find_url": f"{trace_url(trace_id)}/find.json",
    }
