"""The assembly stage: records with sampling decisions, and late versions that write only the
spans a kept trace did not have yet."""

from __future__ import annotations

import dataclasses

import pytest

from streams.assemble.stage import AssemblyStage
from streams.config import AssemblyConfig, SamplingConfig
from streams.model.span import make_span

T_ERR = "e" * 32
T_OK = "0" * 31 + "1"
MS = 1_000_000


def test_sampling_keeps_errors_and_late_versions_write_only_new_spans() -> None:
    clock = [1_000 * MS]
    stage = AssemblyStage(
        AssemblyConfig(trace_idle_ms=100, trace_max_age_ms=1000),
        SamplingConfig(enabled=True, probability=0.0, latency_threshold_ms=500),
        lambda: clock[0],
    )
    stage.add(
        [
            make_span(T_ERR, "1" * 16, "GET /", "web", 0, 10 * MS, status_code="ERROR"),
            make_span(T_ERR, "2" * 16, "db", "db", MS, 2 * MS, parent_span_id="1" * 16),
            make_span(T_OK, "3" * 16, "GET /", "web", 0, 10 * MS),
        ]
    )
    clock[0] += 200 * MS
    finished = {f.record["trace_id"]: f for f in stage.finish_due()}
    assert (
        finished[T_ERR].record["sampled"] and finished[T_ERR].record["sampling_policy"] == "error"
    )
    assert [s["span_id"] for s in finished[T_ERR].kept_spans] == ["1" * 16, "2" * 16]
    assert not finished[T_OK].record["sampled"] and finished[T_OK].kept_spans == []

    stage.add([make_span(T_ERR, "4" * 16, "late", "web", 3 * MS, 4 * MS, parent_span_id="1" * 16)])
    clock[0] += 200 * MS
    (late,) = stage.finish_due()
    assert late.record["version"] == 2 and late.record["span_count"] == 3
    assert [s["span_id"] for s in late.kept_spans] == ["4" * 16]


def test_without_sampling_no_span_is_written_again_and_every_one_is_marked() -> None:
    clock = [0]
    stage = AssemblyStage(AssemblyConfig(trace_idle_ms=100), SamplingConfig(), lambda: clock[0])
    stage.add([make_span(T_OK, "3" * 16, "GET /", "web", 0, 10 * MS)])
    clock[0] += 200 * MS
    (only,) = stage.finish_due()
    assert only.record["sampled"] and only.record["sampling_policy"] == "sampling_off"
    # The span sink stored every span: nothing for the sweep to write to otel_traces.
    assert only.kept_spans == []
    # Its emitted mark: trace id, version, emission time, the span ids packed.
    assert only.mark == (T_OK, 1, only.record["emitted_at_unix_nano"], bytes.fromhex("3" * 16))


def test_retained_traces_are_capped() -> None:
    clock = [0]
    stage = AssemblyStage(
        AssemblyConfig(trace_idle_ms=100, max_retained_traces=2),
        SamplingConfig(),
        lambda: clock[0],
    )
    for i in range(5):
        stage.add([make_span(f"{i + 1:032x}", "3" * 16, "GET /", "web", 0, 10 * MS)])
    clock[0] += 200 * MS
    assert len(stage.finish_due()) == 5
    stage.finish_due()  # the next sweep forgets beyond the cap
    assert stage.buffer.retained_trace_count == 2
    assert stage.buffer.tombstone_count == 3
    # A late span for a forgotten trace still gets a new version, marked partial.
    stage.add([make_span(f"{1:032x}", "4" * 16, "late", "web", 0, 10 * MS)])
    clock[0] += 200 * MS
    (late,) = stage.finish_due()
    assert late.record["version"] == 2


def test_after_a_restart_re_read_spans_of_emitted_traces_are_duplicates() -> None:
    clock = [0]
    config = AssemblyConfig(trace_idle_ms=100)
    root = make_span(T_OK, "3" * 16, "GET /", "web", 0, 10 * MS)
    child = make_span(T_OK, "4" * 16, "db", "db", MS, 2 * MS, parent_span_id="3" * 16)
    other = make_span(T_ERR, "5" * 16, "GET /", "web", 0, 10 * MS)
    before = AssemblyStage(config, SamplingConfig(), lambda: clock[0])
    before.add([root, child])
    clock[0] += 200 * MS
    (emitted,) = before.finish_due()
    before.add([other])  # open when the worker dies: only the spans topic has it

    clock[0] += 10_000 * MS  # the worker was down for ten seconds
    after = AssemblyStage(config, SamplingConfig(), lambda: clock[0])
    after.restore([emitted.mark])
    after.add([root, child, other])  # re-read from the committed offset
    assert after.buffer.stats.duplicate_spans == 2
    clock[0] += 200 * MS
    (again,) = after.finish_due()
    assert again.record["trace_id"] == T_ERR and again.record["version"] == 1
    # A span new to the emitted trace starts a later version without the spans it forgot.
    # Not version 2: that one may have been published just before the crash, unmarked.
    late = make_span(T_OK, "6" * 16, "cache", "web", MS, 2 * MS, parent_span_id="3" * 16)
    after.add([late, child])
    clock[0] += 200 * MS
    (partial,) = after.finish_due()
    assert partial.record["version"] == 3
    assert partial.record["span_ids"] == ["6" * 16]


@pytest.mark.parametrize("include_spans", [None, True], ids=["default", "include_spans"])
def test_records_carry_span_ids_by_default_spans_on_request_and_each_versions_new_calls(
    include_spans: bool | None,
) -> None:
    server, client = "1" * 16, "2" * 16
    spans = [
        make_span(T_OK, server, "GET /", "web", 0, 10 * MS, kind="SERVER"),
        make_span(T_OK, client, "call", "web", MS, 8 * MS, parent_span_id=server, kind="CLIENT"),
    ]
    late = make_span(
        T_OK, "3" * 16, "serve", "api", 2 * MS, 7 * MS, parent_span_id=client, kind="SERVER"
    )
    config = AssemblyConfig(trace_idle_ms=100)
    if include_spans is not None:
        config = dataclasses.replace(config, include_spans=include_spans)
    clock = [0]
    stage = AssemblyStage(config, SamplingConfig(), lambda: clock[0])
    stage.add(spans)
    clock[0] += 200 * MS
    (first,) = stage.finish_due()
    assert first.record["spans"] == (spans if include_spans else [])
    assert first.record["span_ids"] == ([] if include_spans else [server, client])
    assert first.kept_spans == []  # sampling is off: the span sink stored them
    calls = first.record["calls"]
    assert [(c["client"], c["server"], c["span_id"]) for c in calls] == [("user", "web", server)]
    stage.add([late])
    clock[0] += 200 * MS
    (second,) = stage.finish_due()
    # Version 2 carries the call its late span completed, not version 1's again.
    calls = second.record["calls"]
    assert [(c["client"], c["server"], c["span_id"]) for c in calls] == [("web", "api", "3" * 16)]
    assert calls[0]["duration_ns"] == 7 * MS and calls[0]["end_time_unix_nano"] == 8 * MS


def test_span_columns_are_held_as_the_same_compact_spans_as_span_dicts() -> None:
    from streams.model.column_codec import columns_from_spans
    from tests.unit.model.test_columns import odd_spans, web_shop

    spans = odd_spans() + web_shop(30)
    clock = [0]
    by_dicts = AssemblyStage(AssemblyConfig(), SamplingConfig(), lambda: clock[0])
    by_columns = AssemblyStage(AssemblyConfig(), SamplingConfig(), lambda: clock[0])
    by_dicts.add(spans)
    by_columns.add_columns(columns_from_spans(spans))
    clock[0] += 60_000 * MS
    from_dicts, from_columns = by_dicts.finish_due(), by_columns.finish_due()
    assert len(from_dicts) == len({s["trace_id"] for s in spans})
    assert [f.record for f in from_columns] == [f.record for f in from_dicts]
    assert [f.kept_spans for f in from_columns] == [f.kept_spans for f in from_dicts]


def test_a_sweep_can_finish_due_traces_a_slice_at_a_time_oldest_first() -> None:
    now = [0]
    stage = AssemblyStage(AssemblyConfig(trace_idle_ms=1), SamplingConfig(), lambda: now[0])
    for i in range(5):
        now[0] = i * MS
        stage.add([make_span(f"{i + 1:032x}", "3" * 16, "GET /", "web", 0, 10 * MS)])
    now[0] = 100 * MS
    slices = [stage.finish_due(2), stage.finish_due(2), stage.finish_due(2), stage.finish_due(2)]
    assert [[f.record["trace_id"] for f in s] for s in slices] == [
        [f"{1:032x}", f"{2:032x}"],
        [f"{3:032x}", f"{4:032x}"],
        [f"{5:032x}"],
        [],
    ]
