"""``/ui/compare?a=<id>&b=<id>``: two traces side by side, as Jaeger's trace comparison does.

Jaeger's TraceDiff (jaegertracing/jaeger-ui, packages/jaeger-ui/src/model/trace-dag/: DenseTrace
and TraceDag) condenses each trace into a tree of groups: spans are in one group when they have
the same service and operation and the same ancestral lineage of services and operations; each
group of the merged tree carries its span count in A and in B, and a group only A has is
removed, one only B has is added, one whose counts differ has fewer or more spans. Here each
group also carries its spans' total time, so a group both traces have is also slower or faster
(by at least `CHANGE_SHARE` of its time in A and `CHANGE_MIN_NS`). The page shows the groups by
call path (Jaeger's tree) and summed per service and operation, largest time change first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from streams.errors import InputError
from streams.model.span import Span
from streams.query import Reader, parse_trace_id
from streams.query.table import format_ms
from streams.query.waterfall import stored_spans
from streams.query.web import Page
from streams.query.web.markup import (
    document,
    link,
    message_page,
    problem,
    service_chip,
    service_colours,
    table,
    text,
    trace_url,
    ui_url,
)

CHANGE_SHARE = 0.10
"""A group both traces have is slower/faster when its total time moved by this share of A's..."""
CHANGE_MIN_NS = 1_000_000
"""...and by at least this much (1 ms), so microsecond jitter is not a change."""

Group = tuple[tuple[str, str], ...]
"""A group of spans: the (service, operation) of each ancestor from the root, then its own."""

COMPARE_CSS = """
td.diff-change { font-weight: 600; }
td.diff-added, td.diff-slower, td.diff-more { color: #b45309; }
td.diff-removed, td.diff-faster, td.diff-fewer { color: #2f6fb0; }
.diff-path { display: inline-block; }
form.compare-pick { display: flex; gap: 8px; align-items: center; }
form.compare-pick input { font: 12px ui-monospace, Menlo, monospace; padding: 4px 8px;
                          width: 290px; border: 1px solid #cbd2d9; border-radius: 4px; }
"""


@dataclass(frozen=True)
class GroupDiff:
    """One group of spans in both traces: its span count and total time in A and in B."""

    group: Group
    count_a: int
    count_b: int
    total_a_ns: int
    total_b_ns: int

    @property
    def changes(self) -> tuple[str, ...]:
        """What differs: added, removed, more/fewer spans, slower/faster; () when alike."""
        if not self.count_a:
            return ("added",)
        if not self.count_b:
            return ("removed",)
        found: list[str] = []
        if self.count_b != self.count_a:
            found.append("more spans" if self.count_b > self.count_a else "fewer spans")
        delta = self.total_b_ns - self.total_a_ns
        if abs(delta) >= max(CHANGE_MIN_NS, CHANGE_SHARE * self.total_a_ns):
            found.append("slower" if delta > 0 else "faster")
        return tuple(found)


def span_groups(spans: Sequence[Span]) -> dict[Group, tuple[int, int]]:
    """Span count and total duration per group (a span whose parent is missing starts a path
    of its own, as Jaeger treats it as a root)."""
    by_id = {s["span_id"]: s for s in spans}
    paths: dict[str, Group] = {}

    def path(span: Span) -> Group:
        # Up to the first ancestor whose path is known (or the top); a cycle of parent ids
        # ends the lineage where it repeats.
        chain: list[Span] = []
        seen: set[str] = set()
        current: Span | None = span
        while current is not None and current["span_id"] not in paths:
            if current["span_id"] in seen:
                current = None
                break
            seen.add(current["span_id"])
            chain.append(current)
            parent = current["parent_span_id"]
            current = by_id.get(parent) if parent else None
        group: Group = paths[current["span_id"]] if current is not None else ()
        for step in reversed(chain):
            group = (*group, (step["service_name"], step["name"]))
            paths[step["span_id"]] = group
        return paths[span["span_id"]]

    groups: dict[Group, tuple[int, int]] = {}
    for span in by_id.values():
        group = path(span)
        count, total = groups.get(group, (0, 0))
        duration = max(0, span["end_time_unix_nano"] - span["start_time_unix_nano"])
        groups[group] = (count + 1, total + duration)
    return groups


def compare_spans(a: Sequence[Span], b: Sequence[Span]) -> list[GroupDiff]:
    """Every group of either trace, parents before children (Jaeger's merged tree)."""
    groups_a, groups_b = span_groups(a), span_groups(b)
    return [
        GroupDiff(group, *_pair(groups_a.get(group), groups_b.get(group)))
        for group in sorted(groups_a.keys() | groups_b.keys())
    ]


def _pair(a: tuple[int, int] | None, b: tuple[int, int] | None) -> tuple[int, int, int, int]:
    count_a, total_a = a or (0, 0)
    count_b, total_b = b or (0, 0)
    return count_a, count_b, total_a, total_b


def by_operation(diffs: Sequence[GroupDiff]) -> list[GroupDiff]:
    """The groups summed per (service, operation), largest change of total time first."""
    summed: dict[tuple[str, str], tuple[int, int, int, int]] = {}
    for d in diffs:
        ca, cb, ta, tb = summed.get(d.group[-1], (0, 0, 0, 0))
        summed[d.group[-1]] = (ca + d.count_a, cb + d.count_b, ta + d.total_a_ns, tb + d.total_b_ns)
    rows = [GroupDiff((key,), *values) for key, values in summed.items()]
    return sorted(rows, key=lambda d: (-abs(d.total_b_ns - d.total_a_ns), d.group))


def _ms(ns: int, count: int) -> str:
    return text(format_ms(ns)) if count else ""


def _change_cell(d: GroupDiff) -> str:
    delta = d.total_b_ns - d.total_a_ns
    sign = "+" if delta > 0 else "-" if delta < 0 else ""
    return f"{sign}{text(format_ms(abs(delta)))}"


def _diff_table(
    diffs: Sequence[GroupDiff], colours: Mapping[str, str], indent: bool, first: str
) -> str:
    rows: list[tuple[str, ...]] = []
    cells: dict[tuple[int, int], str] = {}
    for r, d in enumerate(diffs):
        service, operation = d.group[-1]
        pad = 16 * (len(d.group) - 1) if indent else 0
        label = (
            f'<span class="diff-path" style="padding-left:{pad}px">'
            f"{service_chip(service, colours[service])}{text(operation)}</span>"
        )
        changes = d.changes
        rows.append(
            (
                label,
                str(d.count_a),
                str(d.count_b),
                _ms(d.total_a_ns, d.count_a),
                _ms(d.total_b_ns, d.count_b),
                _change_cell(d),
                text(", ".join(changes)),
            )
        )
        if changes:
            cells[r, 6] = "diff-change diff-" + changes[-1].split()[0]
    html = table(
        (first, "Spans A", "Spans B", "Time A ms", "Time B ms", "Change ms", "Difference"),
        rows,
        numeric=(1, 2, 3, 4, 5),
        cells=cells,
    )
    return html


def _side(name: str, trace_id: str, spans: Sequence[Span]) -> str:
    roots = [s for s in spans if not s["parent_span_id"]] or list(spans)
    root = min(roots, key=lambda s: s["start_time_unix_nano"])
    start = min(s["start_time_unix_nano"] for s in spans)
    end = max(s["end_time_unix_nano"] for s in spans)
    return (
        f"<span>{text(name)} {link(trace_url(trace_id), text(trace_id), 'mono')}: "
        f"<b>{text(root['service_name'])}: {text(root['name'])}</b>, "
        f"{len(spans)} spans, {text(format_ms(end - start))} ms</span>"
    )


def _picker(a: str, b: str) -> str:
    return (
        f'<form class="compare-pick card" method="get" action="{text(ui_url("compare"))}">'
        f'<label>A <input type="text" name="a" value="{text(a)}"></label>'
        f'<label>B <input type="text" name="b" value="{text(b)}"></label>'
        '<button type="submit">Compare</button></form>'
    )


def compare_page(reader: Reader, params: Mapping[str, str]) -> Page:
    """The comparison of traces `a` and `b`, or the form again with what to fix."""
    title = "Compare traces"
    raw_a, raw_b = params.get("a", "").strip(), params.get("b", "").strip()
    head = f"<style>{COMPARE_CSS}</style><h1>{text(title)}</h1>" + _picker(raw_a, raw_b)
    ids: list[str] = []
    for name, raw in (("A", raw_a), ("B", raw_b)):
        if not raw:
            return Page(
                400,
                document(
                    title,
                    "search",
                    head
                    + problem(
                        f"Give trace {name}'s id: open a trace and use its Compare field, or fill "
                        "in both ids above."
                    ),
                ),
            )
        try:
            ids.append(parse_trace_id(raw))
        except InputError as err:
            return Page(400, document(title, "search", head + problem(f"Trace {name}: {err}.")))
    spans = [stored_spans(reader, trace_id) for trace_id in ids]
    for name, trace_id, found in zip(("A", "B"), ids, spans, strict=True):
        if not found:
            return message_page(
                404,
                "Trace not found",
                f"No spans are stored for trace {name} ({trace_id}): check the id, or search "
                "for the trace.",
                "search",
            )
    diffs = compare_spans(spans[0], spans[1])
    colours = service_colours(d.group[-1][0] for d in diffs)
    counts = {
        label: sum(1 for d in diffs if label in d.changes)
        for label in ("added", "removed", "slower", "faster", "more spans", "fewer spans")
    }
    tally = ", ".join(f"{n} {label}" for label, n in counts.items() if n) or "no differences"
    body = (
        head
        + '<div class="card"><div class="summary-line">'
        + _side("A", ids[0], spans[0])
        + _side("B", ids[1], spans[1])
        + "</div>"
        + f'<p class="note">Groups of spans (same service, operation and callers): '
        f"{len(diffs)}, of which {text(tally)}.</p></div>"
        + "<h2>By service and operation</h2>"
        + _diff_table(by_operation(diffs), colours, indent=False, first="Service: operation")
        + "<h2>By call path</h2>"
        + _diff_table(diffs, colours, indent=True, first="Call path (service: operation)")
    )
    return Page(200, document(title, "search", body))
