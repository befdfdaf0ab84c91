"""Regenerate docs/RELIABILITY.md's table from the suite's result files.

    python -m tests.reliability.report [--results DIR] [--doc docs/RELIABILITY.md]

The table sits between two marker lines in the document; the prose around it is kept, and so
are the rows of faults that have no result file in this run.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from tests.reliability.result import FaultResult, load_results, results_dir

BEGIN = "<!-- reliability-table:begin (python -m tests.reliability.report) -->"
END = "<!-- reliability-table:end -->"
DEFAULT_DOC = Path(__file__).parents[2] / "docs" / "RELIABILITY.md"

_HEADER = (
    "| fault | workload | spans produced | spans read (rows / distinct) | traces complete / "
    "emitted / expected | latency windows exact / expected (spans counted) | alerts | "
    "DLQ expected / seen / counter | duplicates | losses | recovery |"
)


def _dlq(result: FaultResult) -> str:
    if result.dlq_expected is None:
        return "—"
    return f"{result.dlq_expected} / {result.dlq_seen} / {result.dlq_counter}"


def _windows(result: FaultResult) -> str:
    w = result.windows
    if w is None:
        return "not measured"
    text = f"{w.exact:,} / {w.expected:,} ({w.spans_counted:,} / {w.spans_expected:,} spans"
    if w.spans_late:
        text += f"; {w.spans_late:,} late"
    if w.partials_dropped:
        text += f"; {w.partials_dropped:,} partials dropped"
    return text + ")"


def _recovery(result: FaultResult) -> str:
    return "—" if result.recovery_s is None else f"{result.recovery_s:.1f} s"


def _raw_copies(result: FaultResult) -> list[str]:
    copies = result.spans.raw_copies
    if copies is None and result.spans.duplicates == 0:
        return []
    if copies is None:
        return [
            "spans counted without FINAL (a result from before otel_traces kept each span "
            "once): its duplicates are stored copies"
        ]
    if copies == 0:
        return []
    return [
        f"{copies:,} span copies in otel_traces not merged away yet (count() without FINAL; "
        "no query of the product returns them)"
    ]


Figures = dict[str, tuple[str, list[str]]]
"""Fault -> (its table row, its note lines), as the document shows them."""


def render_table(results: Sequence[FaultResult], kept: Figures | None = None) -> str:
    """The markdown table, one row per fault, then each fault's notes; `kept` adds the rows of
    faults with no result (from `previous_figures`), in fault order."""
    figures: Figures = dict(kept or {})
    for r in results:
        s, t = r.spans, r.traces
        row = (
            f"| {r.fault} | {r.workload} | {s.produced:,} | {s.rows:,} / {s.distinct:,} | "
            f"{t.complete:,} / {t.emitted:,} / {t.expected:,} | {_windows(r)} | not measured | "
            f"{_dlq(r)} | "
            f"{s.duplicates:,} | {s.losses:,} | {_recovery(r)} |"
        )
        figures[r.fault] = (
            row,
            [f"- **{r.fault}**: {note}" for note in (*r.notes, *_raw_copies(r))],
        )
    lines = [_HEADER, "|" + "---|" * 11]
    lines += [figures[fault][0] for fault in sorted(figures)]
    notes = [note for fault in sorted(figures) for note in figures[fault][1]]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


_NOTE = re.compile(r"- \*\*(?P<fault>[^*]+)\*\*: ")


def previous_figures(document: str) -> Figures:
    """The rows and notes the document's table holds now, by fault: a run that wrote only
    some faults' results keeps the others' figures (and a fault's long runs)."""
    table = document.partition(BEGIN)[2].partition(END)[0]
    figures: Figures = {}
    for line in table.splitlines():
        cells = line.split("|")
        if line.startswith("| ") and len(cells) > 2 and cells[1].strip() != "fault":
            figures[cells[1].strip()] = (line, [])
    for line in table.splitlines():
        note = _NOTE.match(line)
        if note and note["fault"] in figures:
            figures[note["fault"]][1].append(line)
    return figures


def replace_table(document: str, table: str) -> str:
    """`document` with the text between the markers replaced by `table`."""
    head, found, rest = document.partition(BEGIN)
    _, found_end, tail = rest.partition(END)
    if not found or not found_end:
        raise SystemExit(
            f"the document has no table markers; put these two lines where the table goes:\n"
            f"{BEGIN}\n{END}"
        )
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the table of the result files into the document."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.reliability.report",
        description="Rewrite docs/RELIABILITY.md's table from the reliability suite's result "
        "files (run `pytest tests/reliability` first; it writes one JSON file per fault).",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=results_dir(),
        help="directory of result files (default: $TRACEPIPE_RELIABILITY_RESULTS or "
        "tests/reliability/results)",
    )
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="the document to update")
    args = parser.parse_args(argv)
    results = load_results(args.results)
    if not results:
        print(
            f"no result files in {args.results}; run `pytest tests/reliability` first",
            file=sys.stderr,
        )
        return 1
    document = args.doc.read_text()
    table = render_table(results, kept=previous_figures(document))
    args.doc.write_text(replace_table(document, table))
    print(f"wrote {len(results)} faults into {args.doc} (rows of other faults kept)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
