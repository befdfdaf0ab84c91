"""Trace assembly's pure core: a session window per trace id, on an injected processing-time clock.

A trace opens with its first span and is emitted by `sweep()` when no span arrived for
`trace_idle_ms` ("complete" if a root span is held, else "idle_no_root") or `trace_max_age_ms`
after the version opened ("max_age"), whichever is due first; opening a trace beyond
`max_open_traces` emits the oldest open trace early ("evicted"). Nothing here imports Faust.

Ordering (why a sweep is O(due), not O(open traces)): the clock is clamped to be non-decreasing,
so two OrderedDicts stay sorted for free: `_open` in opening order (its head is the oldest
max-age deadline and the eviction victim) and `_idle` in last-activity order (`move_to_end` on
every span; its head is the oldest idle deadline). A sweep pops heads while a deadline has
passed. Same idea as the Collector's tail-sampling ticker over `decision_wait` with `num_traces`
as its bound, with exact deadlines instead of one-second batches.

Held spans are span rows (streams.model.span.SpanRow) in compact form (CompactSpans: interned
strings, shared resource maps), given built from columns (`add_held`) or encoded from span dicts
(`add`); emissions carry the rows as held, and the analyses read them without a dict per span.
Duplicates (a span id already held for the trace, in any version) are ignored and counted: a
redelivered span never re-opens an emitted trace. Spans beyond `max_spans_per_trace` are not
held; each trace counts them (`dropped_span_count`, deliveries: a redelivered span over the cap
counts again, its id is not kept) and so does `stats.spans_not_held`. The span sink stores every
span from the spans topic, so those spans are not lost, only not assembled.

Late spans and versions: an emitted trace is kept, spans and all, for `late_retention_ms`; a
new span for it re-opens it as version + 1, and that emission carries every span held (earlier
versions' spans plus the late ones): each version's record is complete. After late retention
the spans are dropped and a tombstone (trace id -> last version) is kept for
`tombstone_retention_ms` more; a span then re-opens the trace as tombstone version + 1 with
`partial=True` (the earlier spans are gone: the record must not replace the stored complete
one). Only after the tombstone expires does a span for that id start again at version 1.

Whole before idle (`shapes`, streams.assemble.shapes): a trace that reaches its root
operation's usual span count becomes a candidate; the next sweep emits it ("complete") if it is
whole (every parent and every usually-reported server or consumer half held), without waiting
for trace_idle_ms. Idle and max age stay the fallback; a span after that makes version + 1.

Durable state: none here. The Faust edge (streams.worker.assemble) keeps the Kafka messages a
trace's spans came from unacknowledged until the trace is emitted (`Emission.sources`), so the
spans topic itself is the log of every open trace; what it makes durable is an emitted mark per
trace version (trace id, version, packed span ids). `restore_marks()` turns marks into
tombstones that remember their span ids: after a restart the re-read spans of an emitted trace
are duplicates, and a new span starts version + 1 with `partial=True`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.assemble.compact import CompactSpans
from streams.assemble.emission import Completion, Emission
from streams.assemble.marks import Mark, packed_holds, unpack_span_ids
from streams.assemble.shapes import RootOperation, TraceShapes
from streams.config import AssemblyConfig
from streams.model.span import NAME, SERVICE_NAME, Span, SpanRow

NS_PER_MS = 1_000_000
# Tombstones outlive the span memory by this many late retentions unless told otherwise.
DEFAULT_TOMBSTONE_FACTOR = 6


@dataclass(slots=True)
class BufferStats:
    """Process-local counters (not part of the restored state)."""

    spans_in: int = 0
    duplicate_spans: int = 0
    spans_not_held: int = 0
    late_spans: int = 0
    very_late_spans: int = 0
    traces_emitted: int = 0
    traces_evicted: int = 0
    traces_whole: int = 0


@dataclass(slots=True)
class _Trace:
    trace_id: str
    version: int
    first_seen_ns: int
    opened_ns: int
    last_seen_ns: int
    held: list[Any] = field(default_factory=list)
    span_ids: set[str] = field(default_factory=set)
    dropped_span_count: int = 0
    has_root: bool = False
    partial: bool = False
    emitted_at_ns: int = 0
    # Spans held at the last emission: the next version's new spans start here.
    emitted_span_count: int = 0
    sources: list[Any] = field(default_factory=list)
    root: RootOperation | None = None


class TraceBuffer:
    """Session windows per trace id on an injected clock (unix nanos, processing time)."""

    def __init__(
        self,
        config: AssemblyConfig,
        now: Callable[[], int],
        codec: CompactSpans | None = None,
        *,
        tombstone_retention_ms: int | None = None,
        shapes: TraceShapes | None = None,
    ) -> None:
        self._config = config
        self._shapes = shapes
        self._clock = now
        self._codec = CompactSpans() if codec is None else codec
        self._idle_ns = config.trace_idle_ms * NS_PER_MS
        self._max_age_ns = config.trace_max_age_ms * NS_PER_MS
        self._late_ns = config.late_retention_ms * NS_PER_MS
        tomb_ms = (
            config.late_retention_ms * DEFAULT_TOMBSTONE_FACTOR
            if tombstone_retention_ms is None
            else tombstone_retention_ms
        )
        self._tomb_ns = tomb_ms * NS_PER_MS
        self._last_now = 0
        self._open: OrderedDict[str, _Trace] = OrderedDict()
        self._idle: OrderedDict[str, None] = OrderedDict()
        self._retained: OrderedDict[str, _Trace] = OrderedDict()
        # trace id -> (last version, forgotten at ns, packed span ids: only from restored marks)
        self._tombstones: OrderedDict[str, tuple[int, int, bytes]] = OrderedDict()
        # Open traces that reached their root operation's usual span count since the last
        # sweep: the sweep emits those that are whole.
        self._candidates: dict[str, None] = {}
        self.stats = BufferStats()

    # -- time ---------------------------------------------------------------------------------

    def _tick(self) -> int:
        # A clock stepping back must not reorder the deadline queues: hold it at its maximum.
        now = self._clock()
        if now > self._last_now:
            self._last_now = now
        return self._last_now

    # -- input --------------------------------------------------------------------------------

    def add(self, span: Span) -> list[Emission]:
        """Buffer one span dict; return the traces evicted to make room (usually none)."""
        held = self._codec.encode(span)
        return self.add_held(span["trace_id"], span["span_id"], not span["parent_span_id"], held)

    def add_held(
        self, trace_id: str, span_id: str, is_root: bool, held: Any, source: Any = None
    ) -> list[Emission]:
        """Buffer one span already in its held form (a SpanRow); return the traces evicted to
        make room. `source` (a SpanSource) is where the span came from: the trace counts it
        until it is emitted."""
        now = self._tick()
        self.stats.spans_in += 1
        out: list[Emission] = []
        trace = self._open.get(trace_id)
        if trace is not None:
            if span_id in trace.span_ids:
                self.stats.duplicate_spans += 1
                return out
            self._idle.move_to_end(trace_id)
        else:
            trace = self._retained.get(trace_id)
            if trace is not None:
                if span_id in trace.span_ids:
                    self.stats.duplicate_spans += 1
                    return out
                del self._retained[trace_id]
                trace.version += 1
                trace.opened_ns = now
                trace.emitted_at_ns = 0
                self.stats.late_spans += 1
            else:
                tomb = self._tombstones.get(trace_id)
                if tomb is None:
                    trace = _Trace(trace_id, 1, now, now, now)
                else:
                    if tomb[2] and packed_holds(tomb[2], span_id):
                        # Re-read after a restart: the span is in an emitted version.
                        self.stats.duplicate_spans += 1
                        return out
                    del self._tombstones[trace_id]
                    # Restored from a mark: version + 1 may have been published (complete, from
                    # spans then retained) just before the crash, its mark not yet durable; this
                    # partial one must not reuse that number.
                    version = tomb[0] + (2 if tomb[2] else 1)
                    emitted_ids = unpack_span_ids(tomb[2]) if tomb[2] else set()
                    trace = _Trace(
                        trace_id, version, now, now, now, span_ids=emitted_ids, partial=True
                    )
                    self.stats.very_late_spans += 1
            out = self._make_room()
            self._open[trace_id] = trace
            self._idle[trace_id] = None
        trace.last_seen_ns = now
        if len(trace.held) >= self._config.max_spans_per_trace:
            trace.dropped_span_count += 1
            self.stats.spans_not_held += 1
        else:
            trace.held.append(held)
            trace.span_ids.add(span_id)
            if is_root:
                trace.has_root = True
                trace.root = (held[SERVICE_NAME], held[NAME])
            if source is not None and (not trace.sources or trace.sources[-1] is not source):
                trace.sources.append(source)
                source.traces += 1
            if trace.root is not None and self._shapes is not None:
                usual = self._shapes.usual_span_count(trace.root)
                if usual is not None and len(trace.held) >= usual:
                    self._candidates[trace_id] = None
        return out

    def _make_room(self) -> list[Emission]:
        out: list[Emission] = []
        while len(self._open) >= self._config.max_open_traces:
            oldest = next(iter(self._open.values()))
            out.append(self._emit(oldest, "evicted"))
            self.stats.traces_evicted += 1
        return out

    # -- output -------------------------------------------------------------------------------

    def sweep(self, limit: int | None = None) -> list[Emission]:
        """Emit every trace whose idle or max-age deadline has passed (the `limit` most overdue
        at most); expire old memories."""
        now = self._tick()
        out = self._emit_whole(limit)
        while self._open and (limit is None or len(out) < limit):
            by_idle = self._open[next(iter(self._idle))]
            by_age = next(iter(self._open.values()))
            idle_due = by_idle.last_seen_ns + self._idle_ns
            age_due = by_age.opened_ns + self._max_age_ns
            if idle_due <= age_due:
                if idle_due > now:
                    break
                out.append(self._emit(by_idle, "complete" if by_idle.has_root else "idle_no_root"))
            else:
                if age_due > now:
                    break
                out.append(self._emit(by_age, "max_age"))
        self._expire(now)
        return out

    def _emit_whole(self, limit: int | None) -> list[Emission]:
        out: list[Emission] = []
        if not self._candidates or self._shapes is None:
            return out
        is_whole = self._shapes.is_whole
        candidates = self._candidates
        while candidates and (limit is None or len(out) < limit):
            trace_id = next(iter(candidates))
            del candidates[trace_id]
            trace = self._open.get(trace_id)
            # Not whole yet: the span that completes it makes it a candidate again.
            if trace is not None and is_whole(trace.held, trace.span_ids):
                out.append(self._emit(trace, "complete", whole=True))
                self.stats.traces_whole += 1
        return out

    def _emit(self, trace: _Trace, completion: Completion, whole: bool = False) -> Emission:
        trace_id = trace.trace_id
        del self._open[trace_id]
        del self._idle[trace_id]
        trace.emitted_at_ns = self._last_now
        self._retained[trace_id] = trace
        sources, trace.sources = tuple(trace.sources), []
        self.stats.traces_emitted += 1
        spans: list[SpanRow] = list(trace.held)
        previous, trace.emitted_span_count = trace.emitted_span_count, len(spans)
        if self._shapes is not None and completion == "complete" and trace.root is not None:
            self._shapes.learn(trace.root, spans, whole)
        if len(self._retained) > self._config.max_retained_traces:
            # The caps hold between sweeps too: a flood evicts faster than sweeps expire.
            self._expire(self._last_now)
        return Emission(
            trace_id=trace_id,
            version=trace.version,
            completion=completion,
            spans=spans,
            dropped_span_count=trace.dropped_span_count,
            first_seen_ns=trace.first_seen_ns,
            last_seen_ns=trace.last_seen_ns,
            partial=trace.partial,
            previous_span_count=previous,
            sources=sources,
            whole=whole,
        )

    def _expire(self, now: int) -> None:
        while self._retained:
            trace = next(iter(self._retained.values()))
            # Forget past late retention, or earlier when more are held than the cap allows.
            if (
                now - trace.emitted_at_ns < self._late_ns
                and len(self._retained) <= self._config.max_retained_traces
            ):
                break
            del self._retained[trace.trace_id]
            self._tombstones[trace.trace_id] = (trace.version, now, b"")
        while self._tombstones:
            trace_id, (_, forgotten_ns, _) = next(iter(self._tombstones.items()))
            # Retention alone grows with the trace rate (a flood of single-span traces): cap it.
            if (
                now - forgotten_ns < self._tomb_ns
                and len(self._tombstones) <= self._config.max_tombstones
            ):
                break
            del self._tombstones[trace_id]

    # -- introspection ------------------------------------------------------------------------

    def holds(self, trace_id: str) -> bool:
        """Whether the trace is open or retained (emitted, waiting for late spans)."""
        return trace_id in self._open or trace_id in self._retained

    @property
    def open_trace_count(self) -> int:
        """Traces currently open (bounded by max_open_traces)."""
        return len(self._open)

    @property
    def retained_trace_count(self) -> int:
        """Emitted traces still remembered, spans and all, for late spans."""
        return len(self._retained)

    @property
    def tombstone_count(self) -> int:
        """Forgotten traces whose last version is still remembered."""
        return len(self._tombstones)

    def next_deadline_ns(self) -> int | None:
        """The earliest idle or max-age deadline of an open trace (for a timer), or None."""
        if not self._open:
            return None
        idle = self._open[next(iter(self._idle))].last_seen_ns + self._idle_ns
        age = next(iter(self._open.values())).opened_ns + self._max_age_ns
        return min(idle, age)

    # -- durable state -----------------------------------------------------------------------

    def restore_marks(self, marks: Iterable[Mark]) -> None:
        """Start over from emitted marks (after a restart or a rebalance): nothing open or
        retained, each marked trace a tombstone that knows its span ids. The spans of traces
        not yet emitted come again from the spans topic."""
        latest: dict[str, Mark] = {}
        for mark in marks:
            known = latest.get(mark[0])
            if known is None or mark[1] > known[1]:
                latest[mark[0]] = mark
        self._open.clear()
        self._idle.clear()
        self._retained.clear()
        self._candidates.clear()
        ordered = sorted(latest.values(), key=lambda mark: mark[2])
        self._tombstones = OrderedDict((m[0], (m[1], m[2], m[3])) for m in ordered)
        if ordered:
            self._last_now = max(self._last_now, ordered[-1][2])
