"""The assembly stage's core: spans in, finished trace records (with sampling decisions) out.

Plain Python over the TraceBuffer, the trace record builder and the tail sampler; the Faust
wiring in streams.worker.assemble only feeds it spans and ticks it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from streams.assemble.buffer import TraceBuffer
from streams.assemble.compact import CompactSpans
from streams.assemble.emission import Emission
from streams.assemble.marks import Mark, pack_span_ids
from streams.assemble.record import TraceRecord, build_trace_record
from streams.assemble.sampling import TailSampler
from streams.assemble.shapes import TraceShapes
from streams.config import AssemblyConfig, SamplingConfig
from streams.model.columns import SpanColumns
from streams.model.span import (
    PARENT_SPAN_ID,
    SPAN_ID,
    TRACE_ID,
    Span,
    span_from_row,
)


@dataclass(frozen=True)
class FinishedTrace:
    """A trace record ready to publish, with the spans tail sampling kept for otel_traces
    (empty when it dropped them or is off: the span sink stored them all), the sources of its
    new spans and its emitted mark (to make durable once published)."""

    record: TraceRecord
    kept_spans: list[Span]
    sources: tuple[Any, ...]
    mark: Mark
    whole: bool = False
    """Emitted as soon as it was whole, before going idle (assembly.early_emission)."""


class EmittedMark(NamedTuple):
    """What making a published trace's emission durable needs (its mark, the sources of its new
    spans), held without its record while its service-graph calls wait in edge windows."""

    mark: Mark
    sources: tuple[Any, ...]


class AssemblyStage:
    """Buffers spans per trace id and turns due traces into records, in emission order."""

    def __init__(
        self, assembly: AssemblyConfig, sampling: SamplingConfig, now: Callable[[], int]
    ) -> None:
        self.config = assembly
        self.sampling = sampling
        self._now = now
        # Spans leave the stage whole only in records with spans and as tail-sampled spans.
        whole = assembly.include_spans or sampling.enabled
        self._compact = CompactSpans(whole)
        self.buffer = TraceBuffer(
            assembly,
            now,
            codec=self._compact,
            tombstone_retention_ms=assembly.tombstone_retention_ms,
            shapes=TraceShapes() if assembly.early_emission else None,
        )
        self._sampler = TailSampler(sampling, now)
        self._evicted: list[Emission] = []
        # With sampling: how many of a trace's spans (a prefix: held spans keep their order) are
        # already in otel_traces, so a late version writes only what is new.
        self._spans_written: dict[str, int] = {}
        self._finished_since_prune = 0

    def add(self, spans: Iterable[Span]) -> None:
        """Buffer spans; traces evicted to make room are kept until the next `finish_due`."""
        for span in spans:
            self._evicted.extend(self.buffer.add(span))

    def add_columns(self, columns: SpanColumns, source: Any = None) -> None:
        """Buffer a batch of span columns (held compact without a span dict in between);
        `source` (a SpanSource) is counted by every trace they feed until it is emitted."""
        add = self.buffer.add_held
        evicted = self._evicted
        for held in self._compact.encode_columns(columns):
            evicted.extend(
                add(held[TRACE_ID], held[SPAN_ID], not held[PARENT_SPAN_ID], held, source)
            )

    def finish_due(self, limit: int | None = None) -> list[FinishedTrace]:
        """The traces that are due (evicted, idle or aged; at most `limit`, evicted first), as
        finished records."""
        if limit is None:
            emissions, self._evicted = self._evicted + self.buffer.sweep(), []
        else:
            emissions, self._evicted = self._evicted[:limit], self._evicted[limit:]
            emissions += self.buffer.sweep(limit - len(emissions))
        return [self.finish(e) for e in emissions]

    def restore(self, marks: Iterable[Mark]) -> None:
        """Start over after a (re)start or a rebalance from the owned partitions' emitted marks;
        the spans of unemitted traces come again from the spans topic."""
        self.buffer.restore_marks(marks)
        self._spans_written.clear()

    def finish(self, emission: Emission) -> FinishedTrace:
        """Build the record of one emission and apply tail sampling to it."""
        record = build_trace_record(
            emission.spans,
            version=emission.version,
            completion=emission.completion,
            emitted_at_unix_nano=self._now(),
            include_spans=self.config.include_spans,
            dropped_span_count=emission.dropped_span_count,
            previous_span_count=emission.previous_span_count,
        )
        mark = (
            emission.trace_id,
            emission.version,
            record["emitted_at_unix_nano"],
            pack_span_ids(span[SPAN_ID] for span in emission.spans),
        )
        if not self.sampling.enabled:
            return FinishedTrace(record, [], emission.sources, mark, emission.whole)
        decision = self._sampler.decide(
            record["trace_id"],
            record["duration_ns"],
            record["error_count"],
            record["root_operation"],
        )
        record["sampled"] = decision.keep
        record["sampling_policy"] = decision.policy
        self._prune_spans_written()
        if not decision.keep:
            return FinishedTrace(record, [], emission.sources, mark, emission.whole)
        written = self._spans_written.get(emission.trace_id, 0)
        self._spans_written[emission.trace_id] = len(emission.spans)
        kept = [span_from_row(row) for row in emission.spans[written:]]
        return FinishedTrace(record, kept, emission.sources, mark, emission.whole)

    def _prune_spans_written(self) -> None:
        # Forget traces the buffer has forgotten too (past late retention), now and then.
        self._finished_since_prune += 1
        if self._finished_since_prune < 10_000:
            return
        self._finished_since_prune = 0
        self._spans_written = {t: n for t, n in self._spans_written.items() if self.buffer.holds(t)}
