"""SpanChunks: the buffer's per-span keys packed one chunk per trace and write, and back."""

from __future__ import annotations

import copy
import random
from typing import Any

from streams.assemble.chunks import CHUNK_MAX_SPANS, SpanChunks, chunk_key
from streams.assemble.stage import AssemblyStage
from streams.config import AssemblyConfig, SamplingConfig
from streams.generate.generator import TraceGenerator
from streams.generate.topology import default_topology
from streams.model.span import make_span

MS = 1_000_000


class Table:
    """What the Faust table holds: table writes applied in order, as the changelog replays them."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.records = 0

    def apply(self, writes: list[tuple[str, str, Any]]) -> None:
        for _, key, value in writes:
            self.records += 1
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = copy.deepcopy(value)


def test_a_write_is_one_chunk_per_trace_plus_its_header() -> None:
    clock = [0]
    stage = AssemblyStage(AssemblyConfig(), SamplingConfig(), lambda: clock[0])
    chunks, table = SpanChunks(), Table()
    spans = [
        make_span(f"{t + 1:032x}", f"{t * 100 + i + 1:016x}", "op", "svc", MS, 2 * MS)
        for t in range(3)
        for i in range(8)
    ]
    stage.add(spans)
    writes = chunks.pack(stage.take_changes(), table.data.get)
    table.apply(writes)
    assert len(writes) == 6  # 3 chunks + 3 headers, not 24 span keys + 3 headers
    assert [key.endswith("/h") for _, key, _ in writes] == [False] * 3 + [True] * 3
    assert sorted(k for k in table.data if not k.endswith("/h")) == [
        chunk_key(f"{t + 1:032x}", 0) for t in range(3)
    ]


def test_restoring_from_chunks_gives_the_buffer_it_was_written_from() -> None:
    clock = [1_700_000_000_000 * MS]
    config = AssemblyConfig(trace_idle_ms=100, late_retention_ms=300, max_retained_traces=50)
    stage = AssemblyStage(config, SamplingConfig(), lambda: clock[0])
    chunks, table = SpanChunks(), Table()
    generator = TraceGenerator(default_topology(), seed=5)
    rng = random.Random(5)
    produced = 0
    for step in range(60):
        spans = [s for _ in range(3) for s in generator.trace(clock[0])]
        produced += len(spans)
        rng.shuffle(spans)
        # Each trace's spans arrive over two writes, some late after emission.
        for part in (spans[: len(spans) // 2], spans[len(spans) // 2 :]):
            stage.add(part)
            table.apply(chunks.pack(stage.take_changes(), table.data.get))
        clock[0] += 40 * MS
        stage.finish_due()
        table.apply(chunks.pack(stage.take_changes(), table.data.get))
        if step % 20 == 19:
            restored = AssemblyStage(config, SamplingConfig(), lambda: clock[0])
            fresh = SpanChunks()
            restored.buffer.restore(fresh.unpack(copy.deepcopy(table.data).items()))
            assert restored.buffer.snapshot() == stage.buffer.snapshot()
            assert fresh.trace_count == chunks.trace_count
    # The per-span layout wrote each span twice (added, forgotten) besides the headers.
    assert table.records < produced
    # Forgotten traces leave no chunk behind.
    for _ in range(2):  # emit what is open, then forget it past late retention
        clock[0] += 10_000 * MS
        stage.finish_due()
    table.apply(chunks.pack(stage.take_changes(), table.data.get))
    assert [k for k in table.data if not k.endswith("/h")] == []
    assert chunks.trace_count == 0


def test_a_partial_delete_rewrites_the_chunk_with_what_remains() -> None:
    chunks, table = SpanChunks(), Table()
    trace = "a" * 32
    table.apply(chunks.pack([(trace, f"{trace}/{i}", {"i": i}) for i in range(4)], table.data.get))
    writes = chunks.pack([(trace, f"{trace}/1", None)], table.data.get)
    table.apply(writes)
    assert table.data == {chunk_key(trace, 0): [(0, {"i": 0}), (2, {"i": 2}), (3, {"i": 3})]}
    table.apply(chunks.pack([(trace, f"{trace}/{i}", None) for i in (0, 2, 3)], table.data.get))
    assert table.data == {} and chunks.trace_count == 0


def test_state_of_the_per_span_layout_is_read_and_deleted() -> None:
    trace = "b" * 32
    old = {f"{trace}/0": {"i": 0}, f"{trace}/1": {"i": 1}, f"{trace}/h": {"v": 1}}
    chunks = SpanChunks()
    assert sorted(chunks.unpack(old.items())) == sorted(old.items())
    writes = chunks.pack([(trace, f"{trace}/{i}", None) for i in (0, 1)], old.get)
    assert sorted(key for _, key, value in writes if value is None) == sorted(
        [f"{trace}/0", f"{trace}/1"]
    )


def test_a_large_write_is_split_into_chunks_of_at_most_chunk_max_spans() -> None:
    clock = [0]
    stage = AssemblyStage(AssemblyConfig(), SamplingConfig(), lambda: clock[0])
    chunks, table = SpanChunks(), Table()
    trace_id = "a" * 32
    count = 2 * CHUNK_MAX_SPANS + 7
    stage.add([make_span(trace_id, f"{i + 1:016x}", "op", "svc", MS, 2 * MS) for i in range(count)])
    writes = chunks.pack(stage.take_changes(), table.data.get)
    table.apply(writes)
    assert [len(value) for _, key, value in writes if not key.endswith("/h")] == [
        CHUNK_MAX_SPANS,
        CHUNK_MAX_SPANS,
        7,
    ]
    restored = AssemblyStage(AssemblyConfig(), SamplingConfig(), lambda: clock[0])
    restored.restore(SpanChunks().unpack(table.data.items()))
    clock[0] += 10_000 * MS
    (trace,) = restored.finish_due()
    assert trace.record["span_count"] == count
