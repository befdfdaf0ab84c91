"""The search results as a scatter plot: start time against duration, errors in red, the size by
span count, as Jaeger UI's search page draws it (jaegertracing/jaeger-ui,
SearchTracePage/SearchResults/ScatterPlot.tsx), drawn here as SVG; each point links to its trace.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from streams.query.table import format_ms
from streams.query.web.markup import (
    clock,
    text,
    trace_url,
)
from streams.query.web.search_query import TraceHit

# The scatter plot's drawing area, in SVG user units (the SVG scales to the page's width).
PLOT_WIDTH, PLOT_HEIGHT = 1000, 220
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 64, 16, 12, 30


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above `value` (> 0)."""
    power = 10.0 ** math.floor(math.log10(value))
    return next(m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * power >= value)


def point_radius(span_count: int) -> float:
    """A point's radius: grows with the trace's span count, slowly (by its logarithm)."""
    return min(3.0 + 1.5 * math.log2(max(span_count, 1)), 12.0)


def counted(n: int, noun: str) -> str:
    """`n` and `noun`, plural unless `n` is 1: ``1 span``, ``3 spans``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def scatter_plot(hits: Sequence[TraceHit]) -> str:
    """The results as an SVG scatter plot: start time across, duration up; each point links to
    its trace and names it on hover; traces with errors are red diamonds."""
    if not hits:
        return ""
    first = min(hit.start_ns for hit in hits)
    last = max(hit.start_ns for hit in hits)
    if last == first:  # one moment: centre it in a second either side
        first, last = first - 1_000_000_000, last + 1_000_000_000
    top_ms = nice_ceiling(max(max(hit.duration_ns for hit in hits) / 1e6, 0.001))
    inner_w = PLOT_WIDTH - PLOT_LEFT - PLOT_RIGHT
    inner_h = PLOT_HEIGHT - PLOT_TOP - PLOT_BOTTOM
    bottom = PLOT_TOP + inner_h

    def x_of(ns: int) -> float:
        return PLOT_LEFT + (ns - first) / (last - first) * inner_w

    def y_of(ms: float) -> float:
        return bottom - ms / top_ms * inner_h

    axes = [
        f'<line class="axis" x1="{PLOT_LEFT}" y1="{bottom}" x2="{PLOT_WIDTH - PLOT_RIGHT}" '
        f'y2="{bottom}"></line>'
    ]
    for i in range(5):
        ms = top_ms * i / 4
        y = y_of(ms)
        axes.append(
            f'<line class="grid" x1="{PLOT_LEFT}" y1="{y:.1f}" x2="{PLOT_WIDTH - PLOT_RIGHT}" '
            f'y2="{y:.1f}"></line><text class="tick" x="{PLOT_LEFT - 6}" y="{y + 4:.1f}" '
            f'text-anchor="end">{text(format_ms(int(ms * 1e6)))} ms</text>'
        )
    for i in range(5):
        ns = first + (last - first) * i // 4
        anchor = ("start", "middle", "middle", "middle", "end")[i]
        axes.append(
            f'<text class="tick" x="{x_of(ns):.1f}" y="{bottom + 18}" text-anchor="{anchor}">'
            f"{text(clock(ns)[11:23])}</text>"
        )
    points = []
    # Slowest first, so short traces' points are drawn last, on top, and stay clickable.
    for hit in sorted(hits, key=lambda h: (-h.duration_ns, h.trace_id)):
        x, y, r = x_of(hit.start_ns), y_of(hit.duration_ns / 1e6), point_radius(hit.span_count)
        if hit.error_count:
            shape = (
                f'<path d="M{x:.1f} {y - r * 1.3:.1f}L{x + r * 1.3:.1f} {y:.1f}'
                f'L{x:.1f} {y + r * 1.3:.1f}L{x - r * 1.3:.1f} {y:.1f}Z"></path>'
            )
        else:
            shape = f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}"></circle>'
        counts = [counted(hit.span_count, "span"), counted(len(hit.services), "service")]
        if hit.error_count:
            counts.insert(1, counted(hit.error_count, "error"))
        hover = (
            f"{hit.root_service}: {hit.root_operation}\n{format_ms(hit.duration_ns)} ms, "
            f"{', '.join(counts)}\n{clock(hit.start_ns)}  {hit.trace_id}"
        )
        cls = "point error" if hit.error_count else "point"
        points.append(
            f'<a class="{cls}" href="{text(trace_url(hit.trace_id))}" '
            f'data-trace-id="{text(hit.trace_id)}"><title>{text(hover)}</title>{shape}</a>'
        )
    return (
        f'<div class="scatter card"><svg class="plot" viewBox="0 0 {PLOT_WIDTH} {PLOT_HEIGHT}" '
        'role="img" aria-label="Duration of each trace found against its start time">'
        + "".join(axes)
        + "".join(points)
        + '</svg><div class="legend"><span><svg width="12" height="12"><circle class="ok" '
        'cx="6" cy="6" r="5"></circle></svg> trace</span><span><svg width="12" height="12">'
        '<path class="bad" d="M6 0L12 6L6 12L0 6Z"></path></svg> with errors</span>'
        "<span>size: span count; click a point for its trace</span></div></div>"
    )
