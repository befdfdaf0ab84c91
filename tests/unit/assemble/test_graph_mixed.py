"""Golden service graphs of traces mixing origins: some spans through our Zipkin bridge, some
OpenTelemetry spans, paired by the rules of streams.assemble.graph's "Traces mixing origins".

tests/testdata/assemble/graph_mixed.json is a list of cases {"name", "description", "zipkin",
"otel", "new_from", "edges"}. `zipkin` are Zipkin span lists in test_graph_zipkin's compact form,
each decoded as one message of the Zipkin topic; `otel` are OpenTelemetry spans: `id`, `parent`
(short hex names padded to 16 digits, as the Zipkin rows'), `service`, `kind`, `ts` / `dur` in
microseconds after BASE_US, `status`, `attributes`, `links` (names in this trace). The trace is
the Zipkin spans then the OTel spans; `new_from` is the first span index of the version (0: the
whole trace). Each description says what the anchors make of the case: Zipkin's
DependencyLinker were every span Zipkin's, the Collector's servicegraph connector were every
span OTel's.

Regenerate the expected edges after a deliberate change with
`TRACEPIPE_UPDATE_GOLDEN=1 pytest tests/unit/assemble/test_graph_mixed.py`, then review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from streams.assemble.compact import CompactSpans
from streams.assemble.graph import edges_from_trace
from streams.ingest.zipkin import spans_from_zipkin_json
from streams.model.column_codec import columns_from_spans
from streams.model.span import Span, make_span
from tests.unit.assemble.golden_layout import dump_payload_cases
from tests.unit.assemble.test_graph_zipkin import (
    BASE_US,
    TRACE_ID,
    edge_row,
    span_name,
    zipkin_span,
)

GOLDEN = Path(__file__).resolve().parents[2] / "testdata" / "assemble" / "graph_mixed.json"
UPDATE = os.environ.get("TRACEPIPE_UPDATE_GOLDEN") == "1"


def otel_span(row: dict[str, Any]) -> Span:
    """An OpenTelemetry span from a compact golden row."""
    start = (BASE_US + row.get("ts", 0)) * 1000
    return make_span(
        TRACE_ID,
        row["id"].rjust(16, "0"),
        row.get("name", row["id"]),
        row["service"],
        start,
        start + row.get("dur", 10) * 1000,
        parent_span_id=row["parent"].rjust(16, "0") if "parent" in row else "",
        kind=row.get("kind", "INTERNAL"),
        status_code=row.get("status", "UNSET"),
        attributes=row.get("attributes", {}),
        links=[
            {
                "trace_id": TRACE_ID,
                "span_id": name.rjust(16, "0"),
                "trace_state": "",
                "attributes": {},
            }
            for name in row.get("links", [])
        ],
        source_format="otlp_proto",
    )


def case_spans(case: dict[str, Any]) -> list[Span]:
    """The Zipkin spans as the bridge makes them, then the OTel spans."""
    spans: list[Span] = []
    for payload in case["zipkin"]:
        data = json.dumps([zipkin_span(row) for row in payload]).encode()
        spans.extend(spans_from_zipkin_json(data))
    spans.extend(otel_span(row) for row in case["otel"])
    return spans


def dump_cases(cases: list[dict[str, Any]]) -> str:
    """The cases as JSON with one span or edge per line."""
    scalars = ("name", "description", "new_from")
    return dump_payload_cases(cases, scalars, "zipkin", ("otel", "edges"))


CASES: list[dict[str, Any]] = json.loads(GOLDEN.read_text())


def test_the_golden_file_is_canonical() -> None:
    assert len(CASES) >= 8
    assert len({case["name"] for case in CASES}) == len(CASES)
    if not UPDATE:
        assert GOLDEN.read_text() == dump_cases(CASES), "golden file not in canonical layout"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case["name"])
def test_mixed_origins(case: dict[str, Any]) -> None:
    spans = case_spans(case)
    assert {span["source_format"] for span in spans} == {"zipkin_json", "otlp_proto"}
    names = {span["span_id"]: span_name(span) for span in spans}
    got = [edge_row(edge, names) for edge in edges_from_trace(spans, case["new_from"])]
    if UPDATE:
        case["edges"] = got
        GOLDEN.write_text(dump_cases(CASES))
    assert got == case["edges"]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case["name"])
def test_slim_held_spans_pair_the_same(case: dict[str, Any]) -> None:
    # Held spans keep only GRAPH_ATTRIBUTES of theirs: enough to name a Zipkin span's broker.
    spans = case_spans(case)
    rows = CompactSpans(whole=False).encode_columns(columns_from_spans(spans))
    assert edges_from_trace(rows, case["new_from"]) == edges_from_trace(spans, case["new_from"])
