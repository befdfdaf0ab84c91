"""Golden traces: tests/testdata/assemble/analysis/*.json hold span sets and what they produce.

A span is `[name, parent name, service, operation, start, end, {extra fields}?]`, times relative
to BASE_NS; names stand for span ids. A link in the extra fields is `{"span": name, "attributes":
{...}}`, to a span of the same trace. Expected critical-path segments are `[name, start, end]`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streams.assemble.record import build_trace_record
from streams.assemble.structure import warning_code
from streams.model.codec import AvroCodec
from streams.model.span import Span, make_span

GOLDEN = Path(__file__).resolve().parents[2] / "testdata" / "assemble" / "analysis"
CASES = sorted(GOLDEN.glob("*.json"))
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
BASE_NS = 1_700_000_000_000_000_000
CODEC = AvroCodec("trace")


def span_id(name: str) -> str:
    """A 16-hex span id standing for a short name (up to 8 characters)."""
    return name.encode().hex().rjust(16, "0") if name else ""


def build_spans(
    rows: list[list[Any]], trace_id: str = TRACE_ID, base_ns: int = BASE_NS, unit_ns: int = 1
) -> list[Span]:
    """Spans from the compact golden rows (times in `unit_ns` after `base_ns`)."""
    spans: list[Span] = []
    for row in rows:
        name, parent, service, operation, start, end = row[:6]
        extra: dict[str, Any] = dict(row[6]) if len(row) > 6 else {}
        if "links" in extra:
            extra["links"] = [
                {
                    "trace_id": trace_id,
                    "span_id": span_id(link["span"]),
                    "trace_state": "",
                    "attributes": link["attributes"],
                }
                for link in extra["links"]
            ]
        spans.append(
            make_span(
                trace_id,
                span_id(name),
                operation,
                service,
                base_ns + start * unit_ns,
                base_ns + end * unit_ns,
                parent_span_id=span_id(parent),
                **extra,
            )
        )
    return spans


def test_there_are_golden_traces() -> None:
    assert len(CASES) >= 10


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_golden_trace(case: Path) -> None:
    golden = json.loads(case.read_text())
    spans = build_spans(golden["spans"])
    names = {span_id(row[0]): row[0] for row in golden["spans"]}
    expect = golden["expect"]
    record = build_trace_record(
        spans, version=1, completion="complete", emitted_at_unix_nano=BASE_NS + 1_000
    )

    path = [
        [
            names[s["span_id"]],
            s["start_time_unix_nano"] - BASE_NS,
            s["end_time_unix_nano"] - BASE_NS,
        ]
        for s in record["critical_path"]
    ]
    assert path == expect["critical_path"]
    self_time = [
        [s["service"], s["operation"], s["self_time_ns"]] for s in record["critical_path_self_time"]
    ]
    assert self_time == expect["self_time"]
    assert [warning_code(w) for w in record["warnings"]] == expect["warnings"]
    assert record["depth"] == expect["depth"]
    assert [names[i] for i in record["adjusted_span_ids"]] == expect["adjusted"]
    assert record["clock_skew_adjusted"] is bool(expect["adjusted"])
    root = [record["root_service"], record["root_operation"]]
    assert root == (expect["root"] or ["", ""])
    if "bounds" in expect:
        bounds = [record["start_time_unix_nano"] - BASE_NS, record["end_time_unix_nano"] - BASE_NS]
        assert bounds == expect["bounds"]
        assert record["duration_ns"] == bounds[1] - bounds[0]
    for key in ("error_count", "services", "span_count"):
        if key in expect:
            assert record[key] == expect[key], key  # type: ignore[literal-required]
    # Stored spans keep their reported times, whatever the analysis shifted.
    assert record["spans"] == spans
    assert CODEC.decode(CODEC.encode(record), CODEC.fingerprint) == record
