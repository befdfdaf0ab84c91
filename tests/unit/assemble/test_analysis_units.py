"""Structure, skew and record details the golden traces do not pin, and the analysis's cost."""

from __future__ import annotations

import copy
import random
import time

import pytest

from streams.assemble.critical_path import critical_path
from streams.assemble.record import COMPLETIONS, build_trace_record
from streams.assemble.skew import adjust_clock_skew, adjusted_spans
from streams.assemble.structure import (
    WARN_MIXED_TRACE_IDS,
    WARN_NO_ROOT,
    WARN_ORPHAN_SPAN,
    WARN_PARENT_CYCLE,
    analyze_structure,
    warning_code,
)
from streams.model.codec import AvroCodec
from streams.model.span import SPAN_ID, Span, make_span

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
BASE_NS = 1_700_000_000_000_000_000
CODEC = AvroCodec("trace")


def sid(i: int) -> str:
    return f"{i + 1:016x}"


def chain(length: int) -> list[Span]:
    """A root and a single line of descendants, each nested in its parent."""
    return [
        make_span(
            TRACE_ID,
            sid(i),
            f"op{i % 3}",
            f"svc{i % 2}",
            BASE_NS + i,
            BASE_NS + 2 * length - i,
            parent_span_id=sid(i - 1) if i else "",
        )
        for i in range(length)
    ]


def random_tree(count: int, seed: int = 7) -> list[Span]:
    """A root with `count - 1` descendants hung at random, in shuffled order."""
    rnd = random.Random(seed)
    spans = [make_span(TRACE_ID, sid(0), "GET /", "frontend", BASE_NS, BASE_NS + 10**9)]
    for i in range(1, count):
        parent = spans[rnd.randrange(i)]
        start = parent["start_time_unix_nano"] + rnd.randrange(1_000)
        spans.append(
            make_span(
                TRACE_ID,
                sid(i),
                f"op{i % 50}",
                f"svc{i % 7}",
                start,
                start + rnd.randrange(10**6),
                parent_span_id=parent["span_id"],
                status_code="ERROR" if i % 10 == 0 else "UNSET",
            )
        )
    rnd.shuffle(spans)
    return spans


def test_deep_chain_needs_no_recursion() -> None:
    spans = chain(10_000)
    record = build_trace_record(spans, version=1, completion="complete", emitted_at_unix_nano=0)
    assert record["depth"] == 10_000
    assert record["warnings"] == []
    # Down the chain and back up: every span's two stretches except the innermost one's.
    assert len(record["critical_path"]) == 2 * 10_000 - 1
    assert record["duration_ns"] == 2 * 10_000


def test_wide_trace_of_100k_spans() -> None:
    spans = random_tree(100_000)
    record = build_trace_record(
        spans, version=1, completion="complete", emitted_at_unix_nano=0, include_spans=False
    )
    assert record["span_count"] == 100_000
    assert record["error_count"] == 9_999
    assert record["root_operation"] == "GET /"
    assert record["depth"] > 1
    assert record["spans"] == []
    assert sorted(record["span_ids"]) == sorted(s["span_id"] for s in spans)
    path = record["critical_path"]
    assert sum(s["self_time_ns"] for s in path) == 10**9


def test_a_trace_that_is_only_a_loop() -> None:
    spans = [
        make_span(
            TRACE_ID,
            sid(i),
            "op",
            "svc",
            BASE_NS + i,
            BASE_NS + 100,
            parent_span_id=sid((i + 1) % 5),
        )
        for i in range(5)
    ]
    structure = analyze_structure(spans)
    assert [warning_code(w) for w in structure.warnings] == [WARN_PARENT_CYCLE, WARN_NO_ROOT]
    assert structure.spans[structure.start][SPAN_ID] == sid(0)  # the loop's earliest span
    assert structure.depth == 5


def test_warnings_name_a_few_ids_not_all() -> None:
    spans = [
        make_span(TRACE_ID, sid(i), "op", "svc", BASE_NS, BASE_NS + 1, parent_span_id="f" * 16)
        for i in range(1_000)
    ]
    structure = analyze_structure(spans)
    orphan = next(w for w in structure.warnings if warning_code(w) == WARN_ORPHAN_SPAN)
    assert orphan.startswith(f"{WARN_ORPHAN_SPAN}: 1000 spans")
    assert orphan.endswith("(+995 more)")


def test_mixed_trace_ids_are_reported() -> None:
    spans = [
        make_span(TRACE_ID, sid(0), "a", "s", 0, 10),
        make_span("f" * 32, sid(1), "b", "s", 1, 2, parent_span_id=sid(0)),
    ]
    assert warning_code(analyze_structure(spans).warnings[0]) == WARN_MIXED_TRACE_IDS


def test_skew_copies_shifted_spans_and_leaves_inputs_alone() -> None:
    root = make_span(TRACE_ID, sid(0), "GET /", "frontend", 1_000, 2_000)
    child = make_span(
        TRACE_ID,
        sid(1),
        "handle",
        "backend",
        100,
        500,
        parent_span_id=sid(0),
        events=[{"time_unix_nano": 150, "name": "retry", "attributes": {}}],
    )
    spans = [root, child]
    before = copy.deepcopy(spans)
    structure = analyze_structure(spans)
    adjustment = adjust_clock_skew(structure)
    assert adjustment.adjusted and adjustment.adjusted_span_ids == [sid(1)]
    # Centred: (1000 - 400) / 2 = 300 after the parent's start.
    assert adjustment.delta_ns == [0, 1_300 - 100]
    out = adjusted_spans(structure, adjustment)
    assert out[0] == root
    assert out[1]["start_time_unix_nano"] == 1_300 and out[1]["end_time_unix_nano"] == 1_700
    assert out[1]["events"][0]["time_unix_nano"] == 1_350
    assert spans == before


def test_critical_path_of_spans_applies_skew() -> None:
    spans = [
        make_span(TRACE_ID, sid(0), "GET /", "frontend", 1_000, 2_000),
        make_span(TRACE_ID, sid(1), "handle", "backend", 100, 500, parent_span_id=sid(0)),
    ]
    path = critical_path(spans)
    assert [
        (s["span_id"], s["start_time_unix_nano"], s["end_time_unix_nano"]) for s in path.segments
    ] == [(sid(0), 1_000, 1_300), (sid(1), 1_300, 1_700), (sid(0), 1_700, 2_000)]


def test_record_fields_and_round_trip() -> None:
    spans = random_tree(50)
    record = build_trace_record(
        spans,
        version=3,
        completion="max_age",
        emitted_at_unix_nano=BASE_NS + 5,
        dropped_span_count=7,
    )
    assert record["version"] == 3 and record["completion"] == "max_age"
    assert record["dropped_span_count"] == 7
    assert record["services"] == sorted({s["service_name"] for s in spans})
    assert record["span_ids"] == []
    assert record["trace_id"] == TRACE_ID
    assert CODEC.decode(CODEC.encode(record), CODEC.fingerprint) == record
    slim = build_trace_record(
        spans, version=1, completion="evicted", emitted_at_unix_nano=0, include_spans=False
    )
    assert CODEC.decode(CODEC.encode(slim), CODEC.fingerprint) == slim


def test_empty_trace_is_a_record_not_a_crash() -> None:
    record = build_trace_record([], version=1, completion="evicted", emitted_at_unix_nano=0)
    assert record["span_count"] == 0 and record["depth"] == 0
    assert record["critical_path"] == [] and record["root_service"] == ""


def test_unknown_completion_is_refused() -> None:
    assert "complete" in COMPLETIONS
    with pytest.raises(ValueError, match="idle_no_root"):
        build_trace_record([], version=1, completion="done", emitted_at_unix_nano=0)


def _best_seconds(spans: list[Span], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        began = time.perf_counter()
        build_trace_record(spans, version=1, completion="complete", emitted_at_unix_nano=0)
        best = min(best, time.perf_counter() - began)
    return best


def _one_pass_seconds(spans: list[Span], runs: int) -> float:
    """The cost of the simplest linear pass over the spans: index them by id."""
    best = float("inf")
    for _ in range(runs):
        began = time.perf_counter()
        index = {s["span_id"]: s["start_time_unix_nano"] for s in spans}
        best = min(best, time.perf_counter() - began)
    assert len(index) == len(spans)
    return best


def test_ten_spans_cost_microseconds() -> None:
    # Target 10 us/span; measured ~3-4 us/span. The bound is loose because CI machines are shared.
    small = random_tree(10)
    assert _best_seconds(small, 300) / len(small) < 50e-6


def test_cost_grows_linearly() -> None:
    # Per-span cost rises with trace size even for a bare dict-building pass (caches, the
    # allocator), so compare against that pass: quadratic work would show up as ~10x here.
    small, big = random_tree(10_000), random_tree(100_000)
    small_ratio = _best_seconds(small, 3) / _one_pass_seconds(small, 3)
    big_ratio = _best_seconds(big, 2) / _one_pass_seconds(big, 2)
    assert big_ratio / small_ratio < 4, (small_ratio, big_ratio)
