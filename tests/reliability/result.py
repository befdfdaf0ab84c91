"""What a fault run produced against what the pipeline holds: plain functions, no broker.

`FaultResult` is one row of docs/RELIABILITY.md; the suite writes one JSON file per fault and
`python -m tests.reliability.report` turns the files into the table.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

RESULTS_ENV = "TRACEPIPE_RELIABILITY_RESULTS"
DEFAULT_RESULTS_DIR = Path(__file__).parent / "results"

SpanKey = tuple[str, str]
"""(TraceId, SpanId): what identifies a span."""


@dataclass(frozen=True)
class SpanTally:
    """Spans produced against the rows stored for them."""

    produced: int
    """Distinct valid spans the workload produced."""
    rows: int
    """Rows the product's queries return for the workload's traces (otel_traces FINAL, as
    `tracepipe query`, the web view and the dashboard read it)."""
    distinct: int
    """Distinct produced (TraceId, SpanId) among the stored rows."""
    unexpected: int
    """Distinct stored spans the workload never produced (e.g. a poison record let through)."""

    @property
    def duplicates(self) -> int:
        """Rows a user sees beyond one per stored span."""
        return self.rows - self.distinct - self.unexpected_rows

    @property
    def losses(self) -> int:
        """Produced spans with no row."""
        return self.produced - self.distinct

    @property
    def raw_copies(self) -> int | None:
        """Rows in otel_traces without FINAL beyond those a user sees: copies a merge has not
        collapsed yet (None when not measured)."""
        return None if self.raw_rows is None else self.raw_rows - self.rows

    unexpected_rows: int = 0
    """Rows of the unexpected spans (kept apart so they count neither as duplicates nor hits)."""
    raw_rows: int | None = None
    """Every row of otel_traces, no FINAL. None in results written before otel_traces was
    deduplicated by span identity, whose `rows` were counted without FINAL."""


def tally_spans(
    produced: Iterable[SpanKey], stored_rows: Iterable[SpanKey], raw_rows: int | None = None
) -> SpanTally:
    """Compare produced span keys with the rows users read (one key per row, repeats kept);
    `raw_rows` is the table's row count without FINAL."""
    expected = set(produced)
    rows = Counter(stored_rows)
    hits = [key for key in rows if key in expected]
    strays = [key for key in rows if key not in expected]
    return SpanTally(
        produced=len(expected),
        rows=sum(rows.values()),
        distinct=len(hits),
        unexpected=len(strays),
        unexpected_rows=sum(rows[key] for key in strays),
        raw_rows=raw_rows,
    )


@dataclass(frozen=True)
class TraceTally:
    """Traces expected against the latest stored version of each."""

    expected: int
    emitted: int
    """Expected traces with at least one stored version."""
    complete: int
    """Expected traces whose latest version holds all their spans."""
    incomplete_ids: tuple[str, ...] = ()
    """Up to 20 trace ids emitted but short of spans, for the report's notes."""


def tally_traces(
    expected_span_counts: Mapping[str, int], latest_span_counts: Mapping[str, int]
) -> TraceTally:
    """Compare each trace's span count with its latest emitted version's (`tracepipe_traces
    FINAL`); a trace that was never emitted is missing, one short of spans is incomplete."""
    emitted = [t for t in expected_span_counts if t in latest_span_counts]
    short = sorted(t for t in emitted if latest_span_counts[t] != expected_span_counts[t])
    return TraceTally(
        expected=len(expected_span_counts),
        emitted=len(emitted),
        complete=len(emitted) - len(short),
        incomplete_ids=tuple(short[:20]),
    )


WindowKey = tuple[str, str, str, str, int]
"""(service, operation, span kind as stored, status class, window start in unix ns)."""

EdgeWindowKey = tuple[str, str, str, int]
"""(client, server, connection type, window start in unix ns): one service-graph window."""

OriginWindowKey = tuple[str, str, str, str, int]
"""(service, operation where errors were seen, origin service, origin operation, window start in
unix ns): one error-origin window."""

AnyWindowKey = TypeVar("AnyWindowKey", bound=Hashable)


@dataclass(frozen=True)
class WindowTally:
    """Latency windows expected from the produced spans against the final windows stored."""

    expected: int
    """Windows the produced spans fall into."""
    exact: int
    """Of those, windows stored with exactly the expected count."""
    spans_expected: int
    spans_counted: int
    """Observations (`Count`) in the stored windows of the expected keys: every span counts
    once, so this equals spans_expected when no span was lost or counted twice."""
    spans_late: int = 0
    """The worker's tracepipe_latency_late_total: spans that came after their window closed
    (counted, not aggregated)."""
    partials_dropped: int = 0
    """The worker's tracepipe_latency_partials_dropped_total (late or duplicate partials)."""


def tally_windows(
    expected: Mapping[AnyWindowKey, int], stored: Mapping[AnyWindowKey, int]
) -> WindowTally:
    """Compare expected per-window counts (spans, or calls for edges) with the stored final
    windows' `Count`."""
    return WindowTally(
        expected=len(expected),
        exact=sum(1 for key, n in expected.items() if stored.get(key) == n),
        spans_expected=sum(expected.values()),
        spans_counted=sum(stored.get(key, 0) for key in expected),
    )


@dataclass(frozen=True)
class FaultResult:
    """One fault's run: the workload, what was stored and emitted, and how long recovery took."""

    fault: str
    workload: str
    """Human description of the workload (traces, spans, bad records, message format)."""
    spans: SpanTally
    traces: TraceTally
    recovery_s: float | None
    """Seconds from the end of the fault (restart, broker up) until every produced span was
    stored and every trace complete; None when there is no such moment (poison input)."""
    windows: WindowTally | None = None
    dlq_expected: int | None = None
    dlq_seen: int | None = None
    dlq_counter: int | None = None
    """tracepipe_dlq_records_total summed over reasons, as the worker reports it."""
    notes: tuple[str, ...] = field(default=())

    @property
    def clean(self) -> bool:
        """No span lost, shown twice or invented; every trace emitted complete; DLQ exact."""
        dlq_ok = self.dlq_expected is None or (
            self.dlq_seen == self.dlq_expected and self.dlq_counter == self.dlq_expected
        )
        return (
            self.spans.losses == 0
            and self.spans.duplicates == 0
            and self.spans.unexpected == 0
            and self.traces.complete == self.traces.expected
            and dlq_ok
        )

    def to_json(self) -> str:
        """The result as JSON (what `load_results` reads back)."""
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> FaultResult:
        """Read a result written by `to_json`."""
        raw = json.loads(text)
        raw["spans"] = SpanTally(**raw["spans"])
        traces = raw["traces"]
        traces["incomplete_ids"] = tuple(traces.get("incomplete_ids", ()))
        raw["traces"] = TraceTally(**traces)
        raw["notes"] = tuple(raw.get("notes", ()))
        if raw.get("windows") is not None:
            raw["windows"] = WindowTally(**raw["windows"])
        return cls(**raw)


def results_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the suite writes its result files: `$TRACEPIPE_RELIABILITY_RESULTS` or
    tests/reliability/results."""
    chosen = (os.environ if env is None else env).get(RESULTS_ENV, "").strip()
    return Path(chosen) if chosen else DEFAULT_RESULTS_DIR


def save_result(result: FaultResult, directory: Path) -> Path:
    """Write `result` as <directory>/<fault>.json (one file per fault: a rerun replaces it)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{result.fault}.json"
    path.write_text(result.to_json())
    return path


def load_results(directory: Path) -> list[FaultResult]:
    """Every result file in `directory`, by fault name (a fault's long runs after its CI run)."""
    paths = sorted(directory.glob("*.json"), key=lambda p: p.stem)
    return [FaultResult.from_json(p.read_text()) for p in paths]
