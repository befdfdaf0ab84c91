"""Where the service graph's parts go: a box for every slot of the layering, each call's line
as cubic segments, and each edge label's box, clear of every box and label placed before it
(`place_labels`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from streams.query.web.graph_layers import Bend, Layering, Slot

NODE_HEIGHT = 44
"""A box's height: the service's name over its RED line."""
BEND_HEIGHT = 8
LAYER_GAP = 110
ROW_GAP = 26
MARGIN = 24
CHAR_WIDTH = 7.6
"""Approximate width of one character of the node labels (13 px sans-serif)."""
SMALL_CHAR_WIDTH = 7.0
"""Width allowed for one character of the 11 px texts (edge labels, RED lines): at least a
digit's advance in the sans-serif fonts browsers pick (DejaVu Sans: 0.64 em), so a label's box
holds its text; the browser test measures the rendered boxes."""
LABEL_HEIGHT = 15.0
"""Height of an edge label's box (11 px text and its padding)."""
LABEL_PADDING = 4.0
"""Room left and right of an edge label's text inside its box."""
LABEL_STEPS = (0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8, 0.1, 0.9)
"""Where along a line (as the curve's parameter) a label is tried, middle first."""


@dataclass(frozen=True)
class Box:
    """Where a slot or label is drawn: top-left corner and size (a bend spans its column's
    width)."""

    x: float
    y: float
    width: float
    height: float

    @property
    def middle(self) -> float:
        """The vertical centre."""
        return self.y + self.height / 2

    def overlaps(self, other: Box) -> bool:
        """Whether the two boxes share any area (touching edges do not)."""
        return (
            self.x < other.x + other.width
            and other.x < self.x + self.width
            and self.y < other.y + other.height
            and other.y < self.y + self.height
        )


def node_width(name: str, red: str = "") -> float:
    """A service box's width: room for its name and its RED line."""
    return max(96.0, CHAR_WIDTH * len(name) + 32, SMALL_CHAR_WIDTH * len(red) + 20)


def place_slots(
    layering: Layering, widths: Mapping[str, float] | None = None, gap: float = LAYER_GAP
) -> dict[Slot, Box]:
    """Boxes for every slot: layers left to right `gap` apart, each layer centred on the
    tallest; a service is `widths[name]` wide (else as wide as its name needs)."""
    width: dict[Slot, float] = {}
    for column in layering.columns:
        for slot in column:
            if isinstance(slot, Bend):
                width[slot] = 0.0
            else:
                width[slot] = (widths or {}).get(slot) or node_width(slot)
    column_width = [max([width[s] for s in column] + [40.0]) for column in layering.columns]

    def height(slot: Slot) -> float:
        return BEND_HEIGHT if isinstance(slot, Bend) else NODE_HEIGHT

    column_height = [
        sum(height(s) + ROW_GAP for s in column) - ROW_GAP for column in layering.columns
    ]
    tallest = max(column_height, default=0.0)
    boxes: dict[Slot, Box] = {}
    x = float(MARGIN)
    for i, column in enumerate(layering.columns):
        y = MARGIN + (tallest - column_height[i]) / 2
        for slot in column:
            if isinstance(slot, Bend):
                boxes[slot] = Box(x, y, column_width[i], BEND_HEIGHT)
            else:
                boxes[slot] = Box(
                    x + (column_width[i] - width[slot]) / 2, y, width[slot], NODE_HEIGHT
                )
            y += height(slot) + ROW_GAP
        x += column_width[i] + gap
    return boxes


Point = tuple[float, float]
Cubic = tuple[Point, Point, Point, Point]
"""A cubic Bézier segment: start, two control points, end."""


def point_on(cubic: Cubic, t: float) -> Point:
    """The point of `cubic` at parameter `t` (0: its start, 1: its end)."""
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = cubic
    a, b, c, d = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3
    return (a * x0 + b * x1 + c * x2 + d * x3, a * y0 + b * y1 + c * y2 + d * y3)


def _level(x0: float, y0: float, x3: float, y3: float) -> Cubic:
    """A cubic from (x0, y0) to (x3, y3), level at both ends."""
    mid = (x0 + x3) / 2
    return ((x0, y0), (mid, y0), (mid, y3), (x3, y3))


def _straight(x0: float, y0: float, x3: float, y3: float) -> Cubic:
    """A straight line as a cubic (so labels can be tried along it like along a curve)."""
    return ((x0, y0), (x0, y0), (x3, y3), (x3, y3))


def edge_path(
    client: str, server: str, layering: Layering, boxes: Mapping[Slot, Box]
) -> tuple[Cubic, ...]:
    """The line of the calls from `client` to `server`, segment by segment; the first segment
    is where its label goes first."""
    a, b = boxes[client], boxes[server]
    if client == server:
        x, y, top = a.x + a.width - 40, a.y, a.y - 34
        return (((x, y), (x, top), (x + 28, top), (x + 28, y)),)
    if layering.layer[server] <= layering.layer[client]:
        # Against the layering: an arc below both boxes.
        x0, y0, x3, y3 = a.x + a.width / 2, a.y + a.height, b.x + b.width / 2, b.y + b.height
        dip = max(y0, y3) + 40
        return (((x0, y0), (x0, dip), (x3, dip), (x3, y3)),)
    x, y = a.x + a.width, a.middle
    segments: list[Cubic] = []
    for bend in layering.bends.get((client, server), ()):
        box = boxes[bend]
        segments.append(_level(x, y, box.x, box.middle))
        segments.append(_straight(box.x, box.middle, box.x + box.width, box.middle))
        x, y = box.x + box.width, box.middle
    segments.append(_level(x, y, b.x, b.middle))
    return tuple(segments)


def path_data(segments: Sequence[Cubic]) -> str:
    """The SVG ``d`` attribute drawing `segments` (each starts where the one before ends)."""
    d = f"M {segments[0][0][0]:.1f} {segments[0][0][1]:.1f}"
    for _, (x1, y1), (x2, y2), (x3, y3) in segments:
        d += f" C {x1:.1f} {y1:.1f}, {x2:.1f} {y2:.1f}, {x3:.1f} {y3:.1f}"
    return d


class _Occupied:
    """Boxes already drawn, bucketed by the grid cells they touch, so a candidate is checked
    against its neighbours only (a graph of hundreds of edges stays fast)."""

    CELL = 64.0

    def __init__(self, boxes: Iterable[Box]) -> None:
        self._cells: dict[tuple[int, int], list[Box]] = {}
        for box in boxes:
            self.add(box)

    def _keys(self, box: Box) -> list[tuple[int, int]]:
        xs = range(int(box.x // self.CELL), int((box.x + box.width) // self.CELL) + 1)
        ys = range(int(box.y // self.CELL), int((box.y + box.height) // self.CELL) + 1)
        return [(i, j) for i in xs for j in ys]

    def add(self, box: Box) -> None:
        """Mark `box` as taken."""
        for key in self._keys(box):
            self._cells.setdefault(key, []).append(box)

    def hits(self, box: Box) -> bool:
        """Whether `box` overlaps a taken box."""
        return any(
            box.overlaps(other) for key in self._keys(box) for other in self._cells.get(key, ())
        )


def label_width(label: str) -> float:
    """The width of an edge label's box."""
    return SMALL_CHAR_WIDTH * len(label) + 2 * LABEL_PADDING


def place_labels(
    lines: Sequence[tuple[Sequence[Cubic], float]], obstacles: Iterable[Box]
) -> list[Box]:
    """A box for each (line, label width) in order, overlapping no obstacle and no box placed
    before it: the first free place along the line (its first segment's middle, then outwards,
    then the other segments), else the nearest free place straight above or below the first
    segment's middle (always found: below every box there is room)."""
    taken = _Occupied(obstacles)
    placed: list[Box] = []

    def free(box: Box) -> bool:
        return box.y >= 2 and not taken.hits(box)

    def centred(point: Point, width: float) -> Box:
        # Never left of the drawing: the x a label would get there is moved right.
        left = max(2.0, point[0] - width / 2)
        return Box(left, point[1] - LABEL_HEIGHT / 2, width, LABEL_HEIGHT)

    for segments, width in lines:
        tries = (centred(point_on(s, t), width) for s in segments for t in LABEL_STEPS)
        box = next((b for b in tries if free(b)), None)
        if box is None:
            home = centred(point_on(segments[0], 0.5), width)
            step = 1
            while box is None:
                for dy in (step * (LABEL_HEIGHT + 1), -step * (LABEL_HEIGHT + 1)):
                    moved = Box(home.x, home.y + dy, width, LABEL_HEIGHT)
                    if free(moved):
                        box = moved
                        break
                step += 1
        taken.add(box)
        placed.append(box)
    return placed
