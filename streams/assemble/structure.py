"""The shape of an assembled trace: parent links, roots, structural warnings and depth.

Malformed traces are data, not errors: duplicate span ids, orphans, several roots, no root and
parent cycles become warnings, and the trace is still analysed as a forest. Everything here is
iterative (no recursion), so a 10,000-deep chain costs the same as a wide trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from streams.model.span import (
    END,
    PARENT_SPAN_ID,
    SPAN_ID,
    START,
    TRACE_ID,
    Span,
    SpanRow,
    span_rows,
)

WARN_DUPLICATE_SPAN_ID = "duplicate-span-id"
WARN_ORPHAN_SPAN = "orphan-span"
WARN_MULTIPLE_ROOTS = "multiple-roots"
WARN_NO_ROOT = "no-root"
WARN_SELF_PARENT = "self-parent"
WARN_PARENT_CYCLE = "parent-cycle"
WARN_MIXED_TRACE_IDS = "mixed-trace-ids"

# A 100,000-span trace of orphans must not yield a 100,000-entry warning list.
_MAX_IDS_PER_WARNING = 5


@dataclass(frozen=True, slots=True)
class TraceStructure:
    """A trace as a forest over its unique spans; lists are indexed like `spans`."""

    spans: list[SpanRow]
    """One span row per span id (the first occurrence), in input order."""
    parent: list[int]
    """Index of each span's parent, -1 for a top-level span (root, orphan, cycle breaker)."""
    children: dict[int, list[int]]
    """Children of each span that has any (a dict: most spans are leaves)."""
    order: list[int]
    """Top-down order: every parent comes before its children."""
    top_level: list[int]
    """Top-level spans, earliest first."""
    root: int
    """The root span (empty parent id; the earliest when there are several), -1 when none."""
    start: int
    """Where analysis starts: the root, else the earliest top-level span; -1 for no spans."""
    depth: int
    """Spans on the longest top-down chain (1 for a lone span, 0 for no spans)."""
    warnings: list[str]
    """`code: detail` strings; the codes are the WARN_* constants."""


def warning_code(warning: str) -> str:
    """The WARN_* code a warning string starts with."""
    return warning.split(":", 1)[0]


def _warning(code: str, what: str, ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:_MAX_IDS_PER_WARNING])
    more = f" (+{len(ids) - _MAX_IDS_PER_WARNING} more)" if len(ids) > _MAX_IDS_PER_WARNING else ""
    return f"{code}: {len(ids)} {what}: {shown}{more}"


def _earliest(spans: list[SpanRow], candidates: list[int]) -> list[int]:
    """Candidates ordered earliest start first; the longer span, then the lower id, break ties."""
    if len(candidates) < 2:
        return list(candidates)
    return sorted(
        candidates,
        key=lambda i: (
            spans[i][START],
            spans[i][START] - spans[i][END],
            spans[i][SPAN_ID],
        ),
    )


def analyze_structure(spans: Sequence[Span] | Sequence[SpanRow]) -> TraceStructure:
    """Index a trace's spans (dicts or rows) into a forest and report what is wrong with its
    shape."""
    unique: list[SpanRow] = []
    index: dict[str, int] = {}
    duplicates: list[str] = []
    for span in span_rows(spans):
        span_id = span[SPAN_ID]
        if span_id in index:
            duplicates.append(span_id)
        else:
            index[span_id] = len(unique)
            unique.append(span)

    count = len(unique)
    parent = [-1] * count
    children: dict[int, list[int]] = {}
    roots: list[int] = []
    orphans: list[str] = []
    self_parents: list[str] = []
    top_level: list[int] = []
    for i, span in enumerate(unique):
        parent_id = span[PARENT_SPAN_ID]
        if not parent_id:
            roots.append(i)
            top_level.append(i)
            continue
        p = index.get(parent_id, -1)
        if p == i:
            self_parents.append(span[SPAN_ID])
            top_level.append(i)
        elif p < 0:
            orphans.append(span[SPAN_ID])
            top_level.append(i)
        else:
            parent[i] = p
            siblings = children.get(p)
            if siblings is None:
                children[p] = [i]
            else:
                siblings.append(i)

    level = [-1] * count
    order: list[int] = []

    def visit_from(tops: list[int]) -> None:
        # Breadth-first: `order` is top-down and levels come for free, without recursion.
        for t in tops:
            level[t] = 0
        order_start = len(order)
        order.extend(tops)
        pos = order_start
        while pos < len(order):
            node = order[pos]
            pos += 1
            next_level = level[node] + 1
            mine = children.get(node)
            if mine:
                for c in mine:
                    level[c] = next_level
                order.extend(mine)

    visit_from(top_level)

    # Spans not reached from a top-level span sit on (or hang below) a parent cycle: every span
    # has one parent, so each such component holds exactly one loop. Cut it at its earliest span.
    cycles: list[str] = []
    if len(order) < count:
        for u in range(count):
            if level[u] >= 0:
                continue
            on_walk: dict[int, int] = {}
            walk: list[int] = []
            v = u
            while v not in on_walk:
                on_walk[v] = len(walk)
                walk.append(v)
                v = parent[v]
            loop = walk[on_walk[v] :]
            breaker = _earliest(unique, loop)[0]
            children[parent[breaker]].remove(breaker)
            parent[breaker] = -1
            top_level.append(breaker)
            cycles.append("->".join(unique[i][SPAN_ID] for i in loop))
            visit_from([breaker])

    top_level = _earliest(unique, top_level)
    warnings: list[str] = []
    trace_ids = {span[TRACE_ID] for span in unique}
    if len(trace_ids) > 1:
        warnings.append(_warning(WARN_MIXED_TRACE_IDS, "trace ids", sorted(trace_ids)))
    if duplicates:
        warnings.append(_warning(WARN_DUPLICATE_SPAN_ID, "duplicate spans, first kept", duplicates))
    if orphans:
        warnings.append(_warning(WARN_ORPHAN_SPAN, "spans name a missing parent", orphans))
    if self_parents:
        warnings.append(_warning(WARN_SELF_PARENT, "spans name themselves as parent", self_parents))
    if cycles:
        warnings.append(
            _warning(WARN_PARENT_CYCLE, "parent cycles, each cut at its earliest span", cycles)
        )
    root = -1
    if len(roots) > 1:
        ordered_roots = _earliest(unique, roots)
        root = ordered_roots[0]
        warnings.append(
            _warning(
                WARN_MULTIPLE_ROOTS,
                "root spans, earliest used",
                [unique[i][SPAN_ID] for i in ordered_roots],
            )
        )
    elif roots:
        root = roots[0]
    elif unique:
        warnings.append(
            f"{WARN_NO_ROOT}: no span without a parent; analysed from the earliest "
            f"top-level span {unique[top_level[0]][SPAN_ID]}"
        )
    start = root if root >= 0 else (top_level[0] if top_level else -1)
    depth = max(level) + 1 if count else 0
    return TraceStructure(
        spans=unique,
        parent=parent,
        children=children,
        order=order,
        top_level=top_level,
        root=root,
        start=start,
        depth=depth,
        warnings=warnings,
    )
