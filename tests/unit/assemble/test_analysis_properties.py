"""Random trees, and random garbage parent links, never crash the analysis and keep its laws."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.assemble.critical_path import compute_critical_path
from streams.assemble.record import build_trace_record
from streams.assemble.skew import adjust_clock_skew
from streams.assemble.structure import analyze_structure
from streams.model.codec import AvroCodec
from streams.model.span import END, SPAN_ID, START, Span, make_span

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CODEC = AvroCodec("trace")


def sid(i: int) -> str:
    return f"{i + 1:016x}"


@st.composite
def traces(draw: st.DrawFn, garbage: bool) -> list[Span]:
    """A random trace: a tree (optionally with missing, self, cyclic and duplicate links)."""
    count = draw(st.integers(min_value=0, max_value=40))
    spans: list[Span] = []
    for i in range(count):
        if i == 0 and not garbage:
            parent = ""
        elif garbage:
            parent = draw(
                st.one_of(
                    st.just(""),
                    st.integers(min_value=0, max_value=count + 3).map(sid),  # self, later, missing
                )
            )
        else:
            parent = sid(draw(st.integers(min_value=0, max_value=i - 1)))
        span_index = draw(st.integers(0, count)) if garbage and draw(st.booleans()) else i
        start = draw(st.integers(min_value=-1_000, max_value=1_000))
        # Negative durations are garbage a service can send; they must not break anything.
        end = start + draw(st.integers(min_value=-5 if garbage else 0, max_value=2_000))
        spans.append(
            make_span(
                TRACE_ID,
                sid(span_index),
                draw(st.sampled_from(["get", "put", "scan"])),
                draw(st.sampled_from(["api", "db", "cache", ""])),
                start,
                end,
                parent_span_id=parent,
                status_code=draw(st.sampled_from(["UNSET", "OK", "ERROR"])),
            )
        )
    return spans


def check_laws(spans: list[Span]) -> None:
    before = copy.deepcopy(spans)
    structure = analyze_structure(spans)
    adjustment = adjust_clock_skew(structure)
    path = compute_critical_path(structure, adjustment)
    assert spans == before, "the analysis must not mutate its input"

    assert sorted(structure.order) == list(range(len(structure.spans)))
    assert 0 <= structure.depth <= len(structure.spans)
    if structure.start < 0:
        assert not path.segments
        return
    start_span = structure.spans[structure.start]
    lo = start_span[START]
    hi = max(start_span[END], lo)
    known = {s[SPAN_ID] for s in structure.spans}
    cursor = lo
    for segment in path.segments:
        assert segment["span_id"] in known
        # Contiguous and in time order: no overlap, no gap.
        assert segment["start_time_unix_nano"] == cursor
        assert segment["end_time_unix_nano"] > segment["start_time_unix_nano"]
        assert segment["self_time_ns"] == (
            segment["end_time_unix_nano"] - segment["start_time_unix_nano"]
        )
        cursor = segment["end_time_unix_nano"]
    assert cursor == hi, "the path covers the start span's duration exactly once"
    assert sum(s["self_time_ns"] for s in path.self_time) == hi - lo


@settings(max_examples=300, deadline=None)
@given(traces(garbage=False))
def test_trees_keep_the_laws(spans: list[Span]) -> None:
    check_laws(spans)
    structure = analyze_structure(spans)
    if spans:
        assert structure.root == 0
        assert structure.warnings == []


@settings(max_examples=300, deadline=None)
@given(traces(garbage=True))
def test_garbage_links_never_crash(spans: list[Span]) -> None:
    check_laws(spans)
    record = build_trace_record(spans, version=2, completion="idle_no_root", emitted_at_unix_nano=0)
    assert record["span_count"] == len(spans)
    if spans:
        # AvroCodec reads a leading 0x00 as Confluent's magic byte, and the empty trace id of a
        # span-less record encodes as exactly that; real traces always have a trace id.
        assert CODEC.decode(CODEC.encode(record), CODEC.fingerprint) == record
