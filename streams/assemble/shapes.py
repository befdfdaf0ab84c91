"""When an open trace is whole before it goes idle: what traces of each root operation usually
look like, learned from the traces emitted, and the structural checks on a held trace.

A trace is whole when its root span has arrived (a root ends last among its synchronous
descendants), every span's parent is held, every client or producer call (a Zipkin client too,
below) whose operation is usually answered by an instrumented peer has that peer's span (its
child) held, and it holds at least the span count its root operation usually has. The
Collector's tail sampling waits a fixed `decision_wait` instead; trace_idle_ms stays the
fallback for traces never whole (an uninstrumented peer that used to be instrumented, a shape
seen for the first time) and late spans still make a later version.

What is learned (bounded per key, adapts within a few dozen traces of a change):
- per root operation (service, name): the most common span count among its recent traces;
- per calling operation (service, name, kind) of CLIENT and PRODUCER spans, and of Zipkin
  clients (kind-less spans naming a remote service, the client side of a call in Zipkin's
  model, the rule streams.assemble.graph pairs them by): whether its calls mostly have a child
  span (the server or consumer half), a score clamped to ±PAIRING_CLAMP.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence

from streams.assemble.zipkin_links import is_zipkin_client
from streams.model.span import (
    KIND,
    NAME,
    PARENT_SPAN_ID,
    SERVICE_NAME,
    SOURCE_FORMAT,
    SPAN_ID,
    ZIPKIN_FORMAT,
    SpanRow,
)

RootOperation = tuple[str, str]
"""A trace's root span's (service, name)."""

CALLING_KINDS = frozenset(("CLIENT", "PRODUCER"))
"""Span kinds whose remote half (a SERVER or CONSUMER child) another service reports; so does
a Zipkin client (`streams.assemble.zipkin_links.is_zipkin_client`: kind-less, naming both
services)."""

RECENT_TRACES = 64
"""Span counts remembered per root operation."""

MIN_TRACES = 8
"""Traces of a root operation seen before its usual span count is trusted."""

WHOLE_SAMPLE = 8
"""One in this many traces emitted whole is learned (every trace that went idle is)."""

PAIRING_CLAMP = 8
"""Bound of a calling operation's pairing score: it flips after this many calls the other way."""


class TraceShapes:
    """The learned shape of each root operation's traces, and the wholeness check."""

    def __init__(self) -> None:
        self._counts: dict[RootOperation, deque[int]] = {}
        # Per root operation, how often each span count occurs among the remembered ones.
        self._tallies: dict[RootOperation, Counter[int]] = {}
        self._usual: dict[RootOperation, int] = {}
        # > 0: this operation's calls usually have their remote half as a child span.
        self._pairing: dict[tuple[str, str, str], int] = {}
        self._whole_seen = 0

    def usual_span_count(self, root: RootOperation) -> int | None:
        """The span count traces of `root` usually have; None until MIN_TRACES were seen."""
        return self._usual.get(root)

    def learn(self, root: RootOperation, rows: Sequence[SpanRow], whole: bool = False) -> None:
        """Take in an emitted trace whose root is held (`root` is its operation); of traces
        emitted `whole` (which agree with what is learned) one in WHOLE_SAMPLE."""
        if whole:
            self._whole_seen += 1
            if self._whole_seen % WHOLE_SAMPLE:
                return
        counts = self._counts.get(root)
        if counts is None:
            counts = self._counts[root] = deque(maxlen=RECENT_TRACES)
            self._tallies[root] = Counter()
        tally = self._tallies[root]
        # Kept as the window slides (a Counter of the window per trace was 7% of a sweep).
        if len(counts) == RECENT_TRACES:
            dropped = counts[0]
            tally[dropped] -= 1
            if not tally[dropped]:
                del tally[dropped]
        counts.append(len(rows))
        tally[len(rows)] += 1
        if len(counts) >= MIN_TRACES:
            # Most common; on a tie the smaller count, so a trace is not held for a rare one.
            self._usual[root] = min(tally, key=lambda n: (-tally[n], n))
        parents = {row[PARENT_SPAN_ID] for row in rows}
        pairing = self._pairing
        for row in rows:
            if row[KIND] in CALLING_KINDS or (
                row[SOURCE_FORMAT] == ZIPKIN_FORMAT and is_zipkin_client(row)
            ):
                key = (row[SERVICE_NAME], row[NAME], row[KIND])
                score = pairing.get(key, 0) + (1 if row[SPAN_ID] in parents else -1)
                pairing[key] = max(-PAIRING_CLAMP, min(PAIRING_CLAMP, score))

    def is_whole(self, rows: Sequence[SpanRow], span_ids: set[str]) -> bool:
        """Whether a held trace (its rows and their span ids; its root among them) lacks no
        parent and no usually-reported remote half of a call."""
        parents = set()
        pairing = self._pairing
        for row in rows:
            parent = row[PARENT_SPAN_ID]
            if parent:
                if parent not in span_ids:
                    return False
                parents.add(parent)
        for row in rows:
            if (
                (
                    row[KIND] in CALLING_KINDS
                    # The Zipkin check costs an OTel span one comparison.
                    or (row[SOURCE_FORMAT] == ZIPKIN_FORMAT and is_zipkin_client(row))
                )
                and row[SPAN_ID] not in parents
                and pairing.get((row[SERVICE_NAME], row[NAME], row[KIND]), 0) > 0
            ):
                return False
        return True
