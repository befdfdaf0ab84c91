"""The report command keeps the figures of faults a run did not write."""

from __future__ import annotations

from pathlib import Path

from tests.reliability.report import BEGIN, END, main, previous_figures, render_table
from tests.reliability.result import save_result
from tests.unit.reliability.test_result import result


def test_a_run_of_some_faults_keeps_the_other_faults_rows_and_notes(tmp_path: Path) -> None:
    doc = tmp_path / "RELIABILITY.md"
    before = render_table([result("broker-restart"), result("sigkill-restart-x5")])
    doc.write_text(f"# figures\n{BEGIN}\n{before}\n{END}\nprose\n")
    save_result(result("duplicate-spans", losses=1), tmp_path / "results")
    save_result(result("broker-restart", losses=1), tmp_path / "results")
    assert main(["--results", str(tmp_path / "results"), "--doc", str(doc)]) == 0
    text = doc.read_text()
    figures = previous_figures(text)
    assert sorted(figures) == ["broker-restart", "duplicate-spans", "sigkill-restart-x5"]
    # The rerun replaced its row; the fault without a result kept its row and its note.
    assert (
        figures["broker-restart"][0] == render_table([result("broker-restart", 1)]).split("\n")[2]
    )
    assert "- **sigkill-restart-x5**: a note" in figures["sigkill-restart-x5"][1]
    assert text.count("- **broker-restart**: a note") == 1
    assert text.endswith(f"{END}\nprose\n")
