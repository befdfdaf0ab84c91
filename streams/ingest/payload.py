"""One payload's spans as span columns: what the converters hand the bridge.

Columns hold raw ids of fixed width and int64 times, so a span whose ids are not 16/8 bytes of
hex (or whose parent is all zeros, which the columns read as "no parent") or whose times do not
fit an int64 cannot be a row: it stays a span dict, a misfit, which validation always rejects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.errors import SchemaError
from streams.model.column_builder import SpanColumnsBuilder
from streams.model.columns import SpanColumns
from streams.model.span import Span

_ZERO_PARENT = "0" * 16


@dataclass(frozen=True)
class PayloadSpans:
    """A payload's spans: the rows of `columns` are its spans at `positions` (None: every span,
    in order), and `misfits` the others, (position, span) each."""

    columns: SpanColumns
    positions: list[int] | None = None
    misfits: list[tuple[int, Span]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.columns) + len(self.misfits)

    def row_positions(self) -> list[int]:
        """The payload position of each row of `columns`."""
        return list(range(len(self.columns))) if self.positions is None else self.positions

    def spans(self) -> list[Span]:
        """Every span as a span dict, in payload order."""
        spans = self.columns.spans()
        if not self.misfits:
            return spans
        out: list[Span | None] = [None] * len(self)
        for position, span in zip(self.row_positions(), spans, strict=True):
            out[position] = span
        for position, span in self.misfits:
            out[position] = span
        return [span for span in out if span is not None]


def payload_spans(spans: list[Span]) -> PayloadSpans:
    """Span dicts (the JSON converters' output) as columns, a misfit kept as its dict."""
    builder = SpanColumnsBuilder()
    positions: list[int] = []
    misfits: list[tuple[int, Span]] = []
    for position, span in enumerate(spans):
        trace_id, span_id, parent = span["trace_id"], span["span_id"], span["parent_span_id"]
        # bytes.fromhex skips spaces: the lengths make sure every character was hex.
        fits = (
            len(trace_id) == 32
            and len(span_id) == 16
            and (not parent or (len(parent) == 16 and parent != _ZERO_PARENT))
        )
        if fits:
            try:
                builder.add(span)
                positions.append(position)
                continue
            except SchemaError:
                pass
        misfits.append((position, span))
    return PayloadSpans(builder.build(), positions if misfits else None, misfits)
