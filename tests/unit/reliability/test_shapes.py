"""The data-shape workload transforms: what each fault sends, against the spans it is made of."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

from streams.assemble.structure import analyze_structure
from streams.generate.generator import TraceGenerator
from streams.generate.topology import default_topology
from streams.model.span import Span
from tests.reliability.shapes import (
    children_before_parents,
    out_of_order,
    repeated,
    shifted,
    single_span_traces,
    skewed,
    wide_trace,
)

T0 = 1_700_000_000 * 1_000_000_000
MINUTE = 60 * 1_000_000_000


def webshop(traces: int) -> list[Span]:
    generator = TraceGenerator(default_topology(), seed=3)
    return [s for i in range(traces) for s in generator.trace(T0 + i * 2_000_000)]


def keys(spans: list[Span]) -> Counter[tuple[str, str]]:
    return Counter((s["trace_id"], s["span_id"]) for s in spans)


def test_repeated_sends_every_nth_span_twice_some_at_once_some_later() -> None:
    spans = webshop(50)
    now, later = repeated(spans, every=4, seed=1)
    sent = keys(now + later)
    assert set(sent) == set(keys(spans))
    assert sum(n - 1 for n in sent.values()) == len(range(0, len(spans), 4))
    assert later and len(now) > len(spans)
    # A repeat sent at once follows its original directly (the same span batch).
    adjacent = sum(1 for a, b in pairwise(now) if a is b)
    assert adjacent == len(now) - len(spans)
    assert keys(later).keys() <= keys(now).keys()


def test_out_of_order_keeps_every_span_and_puts_children_first() -> None:
    spans = webshop(50)
    shuffled = out_of_order(spans, seed=2)
    assert keys(shuffled) == keys(spans)
    # Deepest first per trace: every parent comes after its children.
    parents = {(s["trace_id"], s["parent_span_id"]) for s in spans if s["parent_span_id"]}
    assert children_before_parents(shuffled) == len(parents)
    # Interleaved: the first trace's spans are not sent together.
    first = spans[0]["trace_id"]
    positions = [i for i, s in enumerate(shuffled) if s["trace_id"] == first]
    assert positions[-1] - positions[0] > len(positions)


def test_shifted_and_skewed_move_times_keep_durations() -> None:
    spans = webshop(5)
    back = shifted(spans, -180 * MINUTE)
    assert [s["end_time_unix_nano"] + 180 * MINUTE for s in back] == [
        s["end_time_unix_nano"] for s in spans
    ]
    off = skewed(spans, {"payment": 3 * MINUTE, "inventory": -3 * MINUTE})
    for before, after in zip(spans, off, strict=True):
        delta = {"payment": 3 * MINUTE, "inventory": -3 * MINUTE}.get(before["service_name"], 0)
        assert after["start_time_unix_nano"] == before["start_time_unix_nano"] + delta
        assert after["end_time_unix_nano"] == before["end_time_unix_nano"] + delta
    assert any(s["service_name"] == "payment" for s in spans)


def test_wide_trace_is_one_well_formed_trace_root_first() -> None:
    spans = wide_trace(5_000, T0, fan_out=50, seed=4)
    assert len(spans) == len(keys(spans)) == 5_000
    assert {s["trace_id"] for s in spans} == {spans[0]["trace_id"]}
    assert spans[0]["parent_span_id"] == ""
    structure = analyze_structure(spans)
    assert structure.warnings == [] and structure.depth == 3
    by_id = {s["span_id"]: s for s in spans}
    for span in spans[1:]:
        parent = by_id[span["parent_span_id"]]
        assert parent["start_time_unix_nano"] <= span["start_time_unix_nano"]
        assert span["end_time_unix_nano"] <= parent["end_time_unix_nano"]


def test_single_span_traces_are_distinct_roots() -> None:
    spans = single_span_traces(1_000, T0, seed=5)
    assert len({s["trace_id"] for s in spans}) == 1_000
    assert all(s["parent_span_id"] == "" for s in spans)
    assert 0 < sum(s["status_code"] == "ERROR" for s in spans) < 100
