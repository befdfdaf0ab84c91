"""Emitted marks and held spans messages: the assembly stage's restart protocol, driven without
Kafka the way streams.worker.assemble.AssemblyState drives it."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from streams.assemble.marks import MARKS_RECORD_MAX_BYTES, EmittedMarks, mark_partition
from streams.assemble.stage import AssemblyStage, FinishedTrace
from streams.config import AssemblyConfig, SamplingConfig
from streams.hold import SourceHold
from streams.model.column_codec import columns_from_spans
from streams.model.span import Span, make_span
from streams.worker.assemble import HeldBatch

MS = 1_000_000
TRACES = [f"{i + 1:032x}" for i in range(4)]


def test_a_sweep_s_many_marks_go_in_records_a_producer_can_send() -> None:
    # A drain made ~15,000 traces' marks of a partition due at once: one 1.1 MB record crashed
    # the producer (1 MiB requests). Each record stays near the bound; every mark comes back.
    many = [(f"{i:032x}", 1, 10, bytes(8) * 9) for i in range(30_000)]
    marks = EmittedMarks(span_ids_horizon_ns=100, retention_ns=1000, max_marks=100_000)
    records = marks.records(2, many, at_ns=10)
    assert len(records) > 2 and len({key for key, _ in records}) == len(records)
    assert max(len(value) for _, value in records) < MARKS_RECORD_MAX_BYTES + 64 * 1024
    assert {mark_partition(key) for key, _ in records} == {2}
    assert sorted(EmittedMarks(100, 1000, 100_000).restore(records)) == sorted(many)
    assert marks.record_count == len(records)


def test_mark_records_restore_the_marks_and_expire_by_age_and_count() -> None:
    marks = EmittedMarks(span_ids_horizon_ns=100, retention_ns=1000, max_marks=3)
    table: dict[bytes, bytes] = {}
    first = [("t1", 1, 10, b"\x01" * 8), ("t2", 1, 10, b"\x02" * 8)]
    table.update(marks.records(0, first, at_ns=10))
    table.update(marks.records(1, [("t1", 2, 20, b"\x01" * 16)], at_ns=20))
    assert sorted(mark_partition(k) for k in table) == [0, 0, 1, 1]

    restored = EmittedMarks(span_ids_horizon_ns=100, retention_ns=1000, max_marks=3)
    got = restored.restore(table.items())
    assert sorted(got) == sorted([*first, ("t1", 2, 20, b"\x01" * 16)])
    # Span ids go past the horizon, versions stay until retention.
    gone = restored.expired(now_ns=115)
    assert gone == [k for k in table if k.endswith(b"/s") and mark_partition(k) == 0]
    for key in gone:
        del table[key]
    assert sorted(EmittedMarks(100, 1000, 3).restore(table.items())) == sorted(
        [("t1", 1, 10, b""), ("t2", 1, 10, b""), ("t1", 2, 20, b"\x01" * 16)]
    )
    # A fourth mark passes the cap: the oldest versions record goes.
    table.update(restored.records(0, [("t3", 1, 30, b"\x03" * 8)], at_ns=30))
    assert [k.decode() for k in restored.expired(now_ns=31)] == ["0/10/1/v"]
    assert restored.expired(now_ns=2000) == [
        k for k in table if k.endswith(b"/s") and not k.startswith(b"0/10/")
    ] + [k for k in table if k.endswith(b"/v") and not k.startswith(b"0/10/")]


@dataclass
class Worker:
    """One worker of the protocol over a one-partition spans log (offsets = list indexes)."""

    stage: AssemblyStage
    marks: EmittedMarks
    position: int
    hold: SourceHold[int, HeldBatch] = field(default_factory=SourceHold)


class Run:
    """The spans log, the marks table, the published trace records and the committed offset."""

    def __init__(self) -> None:
        self.clock = [10**18]
        self.config = AssemblyConfig(trace_idle_ms=100, trace_max_age_ms=300)
        self.log: list[list[Span]] = []
        self.table: dict[bytes, bytes] = {}
        self.published: list[tuple[str, int, tuple[str, ...]]] = []
        self.committed = 0
        self.worker = self.start()

    def start(self) -> Worker:
        stage = AssemblyStage(self.config, SamplingConfig(), lambda: self.clock[0])
        marks = EmittedMarks(2 * 300 * MS, 3_600_000 * MS, 1_000_000)
        stage.restore(marks.restore(self.table.items()))
        return Worker(stage, marks, self.committed)

    def release(self) -> None:
        # Released in offset order: the last one released is the commit point.
        for offset in self.worker.hold.release(0, lambda batch: batch.traces == 0):
            self.committed = offset + 1

    def read(self) -> None:
        worker = self.worker
        while worker.position < len(self.log):
            source = HeldBatch(0)
            worker.hold.hold(0, [worker.position], source)
            worker.stage.add_columns(columns_from_spans(self.log[worker.position]), source)
            worker.position += 1
            self.release()

    def sweep(self, crash_before_marks: bool = False) -> None:
        finished: list[FinishedTrace] = self.worker.stage.finish_due()
        for item in finished:
            record = item.record
            ids = tuple(sorted(record["span_ids"]))
            self.published.append((record["trace_id"], record["version"], ids))
        if crash_before_marks:
            self.crash()
            return
        if finished:
            at = max(item.mark[2] for item in finished)
            self.table.update(self.worker.marks.records(0, [f.mark for f in finished], at))
            for key in self.worker.marks.expired(at):
                self.table.pop(key, None)
        for item in finished:
            for source in item.sources:
                source.traces -= 1
        self.release()

    def crash(self) -> None:
        self.worker = self.start()


step_strategy = st.one_of(
    st.tuples(
        st.just("message"),
        st.lists(st.tuples(st.sampled_from(TRACES), st.integers(0, 5)), min_size=1, max_size=4),
    ),
    st.tuples(st.just("advance"), st.sampled_from([30, 120, 400])),
    st.tuples(st.just("sweep"), st.booleans()),
    st.tuples(st.just("crash"), st.just(False)),
)


def span(trace_id: str, index: int) -> Span:
    parent = "" if index == 0 else f"{trace_id[-4:]}{0:012x}"
    return make_span(
        trace_id, f"{trace_id[-4:]}{index:012x}", f"op{index}", "svc", 0, MS, parent_span_id=parent
    )


T = TRACES[0]


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(step_strategy, max_size=40))
# A late version published from retained spans, the worker killed before its mark: rebuilt
# from the re-read late span alone, it must not reuse the published version's number.
@example(
    steps=[
        ("message", [(T, 0)]),
        ("advance", 120),
        ("sweep", False),
        ("message", [(T, 1)]),
        ("advance", 120),
        ("sweep", True),
        ("advance", 120),
        ("sweep", False),
    ]
)
def test_crashes_anywhere_lose_no_span_and_a_version_published_again_only_grows(
    steps: list[tuple[Any, ...]],
) -> None:
    run = Run()
    for step in steps:
        if step[0] == "message":
            run.log.append([span(trace_id, index) for trace_id, index in step[1]])
            run.read()
        elif step[0] == "advance":
            run.clock[0] += step[1] * MS
        elif step[0] == "sweep":
            run.sweep(crash_before_marks=step[1])
            run.read()
        else:
            run.crash()
            run.read()
    for _ in range(3):
        run.clock[0] += 10_000 * MS
        run.sweep()
    assert run.worker.stage.buffer.open_trace_count == 0
    assert run.worker.hold.held_count() == 0

    # A version is published again only after a crash between its publication and its mark:
    # rebuilt from the re-read spans, plus any that arrived meanwhile, never fewer. The traces
    # table (ReplacingMergeTree(Version)) keeps the last row of a version: the fuller one.
    contents: dict[tuple[str, int], list[set[str]]] = {}
    for trace_id, version, ids in run.published:
        contents.setdefault((trace_id, version), []).append(set(ids))
    for pair, seen in contents.items():
        assert all(a <= b for a, b in itertools.pairwise(seen)), (pair, seen)
    published_ids = {(t, s) for t, _, ids in run.published for s in ids}
    for message in run.log:
        for s in message:
            assert (s["trace_id"], s["span_id"]) in published_ids
