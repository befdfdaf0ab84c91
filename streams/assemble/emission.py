"""What trace assembly emits (streams.assemble.buffer): one version of one trace
(`Emission`), why it was emitted (`Completion`), and where its new spans came from
(`SpanSource`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from streams.model.span import SpanRow

Completion = Literal["complete", "idle_no_root", "max_age", "evicted"]


class SpanSource(Protocol):
    """Where held spans came from (a batch of Kafka messages): counts the open traces that
    hold spans of it, so it is released once every one of them is emitted."""

    traces: int


@dataclass(frozen=True, slots=True)
class Emission:
    """One assembled version of one trace, ready for the trace record and the analyses."""

    trace_id: str
    version: int
    completion: Completion
    spans: list[SpanRow]
    dropped_span_count: int
    first_seen_ns: int
    last_seen_ns: int
    # True when earlier versions' spans were forgotten: this record lacks them.
    partial: bool = False
    # Spans (a prefix of `spans`) already emitted in earlier versions.
    previous_span_count: int = 0
    # The sources (SpanSource) of this version's new spans, each counted once.
    sources: tuple[Any, ...] = ()
    # Emitted as soon as it was whole (streams.assemble.shapes), before going idle.
    whole: bool = False
