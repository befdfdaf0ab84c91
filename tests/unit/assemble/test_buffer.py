"""TraceBuffer: golden scenarios, state round trips and invariants, all on a driven clock."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.assemble.buffer import TraceBuffer
from streams.assemble.emission import Emission
from streams.config import AssemblyConfig
from streams.model.span import RESOURCE_ATTRIBUTES, SPAN_ID, Span, make_span

GOLDEN = Path(__file__).parents[2] / "testdata" / "assemble" / "buffer_scenarios.json"
SCENARIOS: dict[str, Any] = json.loads(GOLDEN.read_text())["scenarios"]
MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000


class Clock:
    """A processing-time clock that only moves when told."""

    def __init__(self) -> None:
        self.ns = T0

    def __call__(self) -> int:
        return self.ns

    def advance(self, ms: int) -> None:
        self.ns += ms * MS


def span(trace_id: str, span_id: str, parent: str = "", **fields: Any) -> Span:
    return make_span(
        trace_id, span_id, f"op-{span_id}", "svc", T0, T0 + 1000, parent_span_id=parent, **fields
    )


def summary(e: Emission) -> dict[str, Any]:
    return {
        "trace_id": e.trace_id,
        "version": e.version,
        "completion": e.completion,
        "span_ids": [s[SPAN_ID] for s in e.spans],
        "dropped": e.dropped_span_count,
        "partial": e.partial,
    }


def run_steps(
    buffer: TraceBuffer, clock: Clock, steps: list[list[Any]], start: int = 0
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for index, step in enumerate(steps, start):
        if step[0] == "span":
            got = buffer.add(span(step[1], step[2], step[3]))
        elif step[0] == "advance":
            clock.advance(step[1])
            got = []
        else:
            got = buffer.sweep()
        out.extend({"step": index, **summary(e)} for e in got)
    return out


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_golden_scenario(name: str) -> None:
    scenario = SCENARIOS[name]
    clock = Clock()
    buffer = TraceBuffer(
        AssemblyConfig(**scenario["config"]),
        clock,
        tombstone_retention_ms=scenario.get("tombstone_retention_ms"),
    )
    assert run_steps(buffer, clock, scenario["steps"]) == scenario["emissions"]


def test_span_dicts_are_held_in_the_one_compact_form() -> None:
    clock = Clock()
    buffer = TraceBuffer(AssemblyConfig(trace_idle_ms=100), clock)
    resource = {"service.name": "svc", "host": "h1"}
    for span_id in ("a" * 16, "b" * 16):
        buffer.add(span("1" * 32, span_id, resource_attributes=dict(resource)))
    clock.advance(200)
    (emission,) = buffer.sweep()
    first, second = emission.spans
    # Equal resource maps are held once, as CompactSpans holds rows built from columns.
    assert first[RESOURCE_ATTRIBUTES] == resource
    assert first[RESOURCE_ATTRIBUTES] is second[RESOURCE_ATTRIBUTES]


def test_a_flood_of_evictions_keeps_the_retained_and_tombstone_caps_between_sweeps() -> None:
    # 300 one-span traces before any sweep: the open cap evicts 290, and the retained and
    # tombstone caps must hold without waiting for a sweep (a reliability run saw 19,000
    # retained under a cap of 2,000 while the sweep waited on the writer).
    clock = Clock()
    config = AssemblyConfig(max_open_traces=10, max_retained_traces=20, max_tombstones=40)
    buffer = TraceBuffer(config, clock)
    evicted = [e for i in range(300) for e in buffer.add(span(f"{i:032x}", "r"))]
    assert len(evicted) == 290
    assert buffer.open_trace_count == 10
    assert buffer.retained_trace_count <= 20
    assert buffer.tombstone_count <= 40


def test_clock_stepping_back_does_not_reorder_deadlines() -> None:
    clock = Clock()
    buffer = TraceBuffer(AssemblyConfig(trace_idle_ms=100, trace_max_age_ms=1000), clock)
    buffer.add(span("t1", "r"))
    clock.advance(-50)
    buffer.add(span("t2", "r"))
    clock.advance(149)
    assert buffer.sweep() == []
    clock.advance(1)
    assert [e.trace_id for e in buffer.sweep()] == ["t1", "t2"]


def test_next_deadline_is_the_earliest_idle_or_age_deadline() -> None:
    clock = Clock()
    buffer = TraceBuffer(AssemblyConfig(trace_idle_ms=100, trace_max_age_ms=150), clock)
    assert buffer.next_deadline_ns() is None
    buffer.add(span("t1", "r"))
    assert buffer.next_deadline_ns() == T0 + 100 * MS
    clock.advance(90)
    buffer.add(span("t1", "a", "r"))
    assert buffer.next_deadline_ns() == T0 + 150 * MS


def test_emitted_trace_is_remembered_then_forgotten() -> None:
    clock = Clock()
    config = AssemblyConfig(trace_idle_ms=100, trace_max_age_ms=1000, late_retention_ms=500)
    buffer = TraceBuffer(config, clock, tombstone_retention_ms=200)
    buffer.add(span("t1", "r"))
    clock.advance(100)
    buffer.sweep()
    assert (buffer.open_trace_count, buffer.retained_trace_count) == (0, 1)
    clock.advance(500)
    buffer.sweep()
    assert (buffer.retained_trace_count, buffer.tombstone_count) == (0, 1)
    clock.advance(200)
    buffer.sweep()
    assert buffer.tombstone_count == 0


def test_stats_count_what_was_not_held() -> None:
    clock = Clock()
    config = AssemblyConfig(trace_idle_ms=100, trace_max_age_ms=1000, max_spans_per_trace=1)
    buffer = TraceBuffer(config, clock)
    for span_id in ("r", "r", "a", "b"):
        buffer.add(span("t1", span_id))
    assert (buffer.stats.spans_in, buffer.stats.duplicate_spans) == (4, 1)
    assert buffer.stats.spans_not_held == 2


# -- invariants over any interleaving ---------------------------------------------------------

TRACES = ["t0", "t1", "t2", "t3"]
step_strategy = st.one_of(
    st.tuples(st.just("span"), st.sampled_from(TRACES), st.integers(0, 7)),
    st.tuples(st.just("advance"), st.integers(0, 400)),
    st.tuples(st.just("sweep")),
)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(step_strategy, max_size=60),
    max_open=st.integers(1, 4),
    cap=st.integers(1, 8),
)
def test_every_span_is_emitted_once_per_version(
    steps: list[tuple[Any, ...]], max_open: int, cap: int
) -> None:
    clock = Clock()
    config = AssemblyConfig(
        trace_idle_ms=100,
        trace_max_age_ms=300,
        max_open_traces=max_open,
        max_spans_per_trace=cap,
        late_retention_ms=500,
    )
    # Tombstones outlive the test, so versions of one trace id must never repeat.
    buffer = TraceBuffer(config, clock, tombstone_retention_ms=10**9)
    added: dict[str, list[str]] = {t: [] for t in TRACES}
    emissions: list[Emission] = []
    for step in steps:
        if step[0] == "span":
            span_id = f"s{step[2]}"
            if span_id not in added[step[1]]:
                added[step[1]].append(span_id)
            emissions.extend(buffer.add(span(step[1], span_id)))
        elif step[0] == "advance":
            clock.advance(step[1])
        else:
            emissions.extend(buffer.sweep())
    clock.advance(10_000)
    emissions.extend(buffer.sweep())
    assert buffer.open_trace_count == 0

    seen: set[tuple[str, int]] = set()
    last: dict[str, Emission] = {}
    for e in emissions:
        assert (e.trace_id, e.version) not in seen
        seen.add((e.trace_id, e.version))
        ids = [s[SPAN_ID] for s in e.spans]
        assert len(ids) == len(set(ids)) <= cap
        previous = last.get(e.trace_id)
        if previous is not None and not e.partial:
            # A re-emission within retention holds everything the previous version held.
            assert e.version == previous.version + 1
            assert ids[: len(previous.spans)] == [s[SPAN_ID] for s in previous.spans]
        last[e.trace_id] = e
    # Per trace, the spans of the last remembered lineage: held or counted as dropped.
    for trace_id, ids in added.items():
        if not ids:
            assert trace_id not in last
            continue
        final = last[trace_id]
        held = [s[SPAN_ID] for s in final.spans]
        assert set(held) <= set(ids)
        if not final.partial:
            # Spans over the cap are not held, so their redeliveries cannot be told apart:
            # dropped_span_count counts deliveries, an upper bound on distinct dropped spans.
            assert len(held) + final.dropped_span_count >= len(ids)
            assert len(held) == min(cap, len(ids))


def test_emission_is_frozen() -> None:
    clock = Clock()
    buffer = TraceBuffer(AssemblyConfig(max_open_traces=1), clock)
    buffer.add(span("t1", "r"))
    (evicted,) = buffer.add(span("t2", "r"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        evicted.version = 2  # type: ignore[misc]


def test_a_flood_of_single_span_traces_keeps_at_most_max_tombstones() -> None:
    clock = Clock()
    config = AssemblyConfig(
        trace_idle_ms=10, trace_max_age_ms=100, max_retained_traces=5, max_tombstones=20
    )
    buffer = TraceBuffer(config, clock)
    versions: dict[str, int] = {}
    for i in range(200):
        buffer.add(span(f"{i:032x}", "r"))
        clock.advance(10)
        for emission in buffer.sweep():
            versions[emission.trace_id] = emission.version
        assert buffer.retained_trace_count <= 5
        assert buffer.tombstone_count <= 20
    assert buffer.tombstone_count == 20
    # The newest tombstones are the ones kept: a late span of a recently forgotten trace still
    # re-opens it as a new version; one forgotten beyond the cap starts again at version 1.
    buffer.add(span(f"{190:032x}", "late", "r"))
    buffer.add(span(f"{0:032x}", "late", "r"))
    clock.advance(10)
    again = {e.trace_id: e.version for e in buffer.sweep()}
    assert again == {f"{190:032x}": 2, f"{0:032x}": 1}
