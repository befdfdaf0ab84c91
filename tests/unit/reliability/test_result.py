"""The reliability suite's comparison: spans and traces produced against what is stored, and the
report table written from result files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.reliability.report import BEGIN, END, main, render_table, replace_table
from tests.reliability.result import (
    RESULTS_ENV,
    FaultResult,
    load_results,
    results_dir,
    save_result,
    tally_spans,
    tally_traces,
    tally_windows,
)

A, B, C = ("t1", "s1"), ("t1", "s2"), ("t2", "s3")


def test_exact_storage_is_clean() -> None:
    tally = tally_spans([A, B, C], [C, A, B])
    assert (tally.produced, tally.rows, tally.distinct) == (3, 3, 3)
    assert (tally.duplicates, tally.losses, tally.unexpected) == (0, 0, 0)


def test_a_span_stored_twice_is_a_duplicate_and_a_missing_one_a_loss() -> None:
    tally = tally_spans([A, B, C], [A, A, A, C])
    assert (tally.rows, tally.distinct, tally.duplicates, tally.losses) == (4, 2, 2, 1)


def test_copies_users_do_not_see_are_raw_copies_not_duplicates() -> None:
    tally = tally_spans([A, B, C], [A, B, C], raw_rows=5)
    assert (tally.duplicates, tally.raw_copies, tally.losses) == (0, 2, 0)
    assert tally_spans([A, B, C], [A, B, C]).raw_copies is None


def test_a_stored_span_nobody_produced_is_unexpected_not_a_duplicate() -> None:
    stray = ("t9", "s9")
    tally = tally_spans([A, B], [A, B, stray, stray])
    assert (tally.unexpected, tally.unexpected_rows) == (1, 2)
    assert (tally.duplicates, tally.losses) == (0, 0)


def test_produced_repeats_count_once() -> None:
    assert tally_spans([A, A, B], [A, B]).produced == 2


def test_traces_missing_and_short_of_spans() -> None:
    tally = tally_traces({"t1": 3, "t2": 2, "t3": 5}, {"t1": 3, "t2": 1, "other": 4})
    assert (tally.expected, tally.emitted, tally.complete) == (3, 2, 1)
    assert tally.incomplete_ids == ("t2",)


W1 = ("cart", "GET /cart", "Server", "ok", 0)
W2 = ("cart", "GET /cart", "Server", "error", 0)
W3 = ("cart", "GET /cart", "Server", "ok", 2_000_000_000)


def test_windows_exact_short_and_missing() -> None:
    tally = tally_windows({W1: 5, W2: 1, W3: 4}, {W1: 5, W2: 2, ("other", "x", "y", "ok", 0): 9})
    assert (tally.expected, tally.exact) == (3, 1)
    # The stranger window is not counted; the missing one counts 0 spans.
    assert (tally.spans_expected, tally.spans_counted) == (10, 7)


def result(fault: str = "sigkill-restart", losses: int = 0, dlq_counter: int = 2) -> FaultResult:
    stored = [A, B, C][: 3 - losses]
    return FaultResult(
        fault=fault,
        workload="2 traces, 3 spans",
        spans=tally_spans([A, B, C], stored, raw_rows=len(stored) + 4),
        traces=tally_traces({"t1": 2, "t2": 1}, {"t1": 2, "t2": 1}),
        recovery_s=4.25,
        windows=replace(tally_windows({W1: 2, W3: 1}, {W1: 2}), spans_late=1),
        dlq_expected=2,
        dlq_seen=2,
        dlq_counter=dlq_counter,
        notes=("a note",),
    )


def test_clean_needs_no_loss_and_an_exact_dlq() -> None:
    assert result().clean
    assert not result(losses=1).clean
    assert not result(dlq_counter=3).clean


def test_results_round_trip_through_their_files(tmp_path: Path) -> None:
    save_result(result("b"), tmp_path)
    save_result(result("a", losses=1), tmp_path)
    save_result(result("b"), tmp_path)  # a rerun replaces its file
    loaded = load_results(tmp_path)
    assert [r.fault for r in loaded] == ["a", "b"]
    assert loaded[0] == result("a", losses=1)


def test_results_dir_from_the_environment(tmp_path: Path) -> None:
    assert results_dir({RESULTS_ENV: str(tmp_path)}) == tmp_path
    assert results_dir({}).name == "results"


def test_table_rows_show_the_figures() -> None:
    table = render_table([result(losses=1)])
    row = table.splitlines()[2]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "sigkill-restart"
    assert cells[2:5] == ["3", "2 / 2", "2 / 2 / 2"]
    assert cells[5:7] == ["1 / 2 (2 / 3 spans; 1 late)", "not measured"]
    assert cells[7:] == ["2 / 2 / 2", "0", "1", "4.2 s"]
    assert "- **sigkill-restart**: a note" in table
    assert "- **sigkill-restart**: 4 span copies in otel_traces not merged away yet" in table


def test_a_result_from_before_says_its_duplicates_were_counted_without_final() -> None:
    old = replace(result(), spans=replace(result().spans, raw_rows=None))
    assert "not merged away yet" not in render_table([old])
    assert "spans counted without FINAL" not in render_table([old])
    copied = replace(old, spans=replace(old.spans, rows=old.spans.rows + 1))
    assert "spans counted without FINAL" in render_table([copied])


def test_the_table_replaces_only_what_is_between_the_markers() -> None:
    doc = f"intro\n{BEGIN}\nold table\n{END}\noutro\n"
    assert replace_table(doc, "new") == f"intro\n{BEGIN}\nnew\n{END}\noutro\n"
    with pytest.raises(SystemExit, match="no table markers"):
        replace_table("no markers here", "new")


def test_report_command_rewrites_the_document(tmp_path: Path) -> None:
    save_result(result(), tmp_path / "results")
    doc = tmp_path / "RELIABILITY.md"
    doc.write_text(f"# figures\n{BEGIN}\n{END}\n")
    assert main(["--results", str(tmp_path / "results"), "--doc", str(doc)]) == 0
    assert "| sigkill-restart | 2 traces, 3 spans |" in doc.read_text()
    assert main(["--results", str(tmp_path / "none"), "--doc", str(doc)]) == 1
