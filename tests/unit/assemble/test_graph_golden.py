"""Golden service graphs: tests/testdata/assemble/graph/*.json hold a trace and its edges.

A case is {"description", "new_from", "spans", "edges"}, and optionally "source_format" (every
span's, default "tracepipe"). A span is a compact dict: `id` and `parent` are short names
standing for span ids (up to 8 characters), times are relative to BASE_NS, and `kind` (default
INTERNAL), `name` (default the id), `status`, `attributes`, `links` (names in this trace, or
{"trace_id", "span_id"} for another), `trace_id` and `source_format` are optional. An edge is
an EdgeObservation with its end time relative to BASE_NS, its span id as a name and its trace
id left out (it is always TRACE_ID).

Regenerate the expected edges after a deliberate change with
`TRACEPIPE_UPDATE_GOLDEN=1 pytest tests/unit/assemble/test_graph_golden.py`, then review the
diff.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.assemble.edges import GRAPH_ATTRIBUTES, EdgeObservation
from streams.assemble.graph import edges_from_trace
from streams.assemble.record import build_trace_record
from streams.model.span import SPAN_KINDS, Span, SpanLink, make_span

GOLDEN = Path(__file__).resolve().parents[2] / "testdata" / "assemble" / "graph"
CASES = sorted(GOLDEN.glob("*.json"))
UPDATE = os.environ.get("TRACEPIPE_UPDATE_GOLDEN") == "1"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
BASE_NS = 1_700_000_000_000_000_000


def span_id(name: str) -> str:
    """A 16-hex span id standing for a short name (up to 8 characters)."""
    return name.encode().hex().rjust(16, "0") if name else ""


def build_span(row: dict[str, Any], source_format: str = "tracepipe") -> Span:
    """A span from a compact golden row."""
    links: list[SpanLink] = []
    for link in row.get("links", []):
        target = link if isinstance(link, dict) else {"trace_id": TRACE_ID, "span_id": link}
        links.append(
            {
                "trace_id": target["trace_id"],
                "span_id": span_id(target["span_id"]),
                "trace_state": "",
                "attributes": {},
            }
        )
    return make_span(
        row.get("trace_id", TRACE_ID),
        span_id(row["id"]),
        row.get("name", row["id"]),
        row["service"],
        BASE_NS + row["start"],
        BASE_NS + row["end"],
        parent_span_id=span_id(row.get("parent", "")),
        kind=row.get("kind", "INTERNAL"),
        status_code=row.get("status", "UNSET"),
        attributes=row.get("attributes", {}),
        links=links,
        source_format=row.get("source_format", source_format),
    )


def case_spans(golden: dict[str, Any]) -> list[Span]:
    """The spans of a golden case."""
    source_format = golden.get("source_format", "tracepipe")
    return [build_span(row, source_format) for row in golden["spans"]]


def edge_row(edge: EdgeObservation, names: dict[str, str]) -> dict[str, Any]:
    """An observation as a golden edge."""
    row = edge._asdict()
    assert row.pop("trace_id") == TRACE_ID
    row["end_time_unix_nano"] -= BASE_NS
    row["span_id"] = names[edge.span_id]
    return row


def dump_case(case: dict[str, Any]) -> str:
    """A case as JSON with one span or edge per line, the way the golden files are written."""
    lines = ["{"]
    for key in ("description", "source_format", "new_from"):
        if key in case:
            lines.append(f"  {json.dumps(key)}: {json.dumps(case[key])},")
    for key in ("spans", "edges"):
        rows = [f"    {json.dumps(row)}" for row in case[key]]
        body = ",\n".join(rows)
        end = "," if key == "spans" else ""
        lines.append(f'  "{key}": [\n{body}\n  ]{end}' if rows else f'  "{key}": []{end}')
    lines.append("}")
    return "\n".join(lines) + "\n"


def test_there_are_golden_cases() -> None:
    assert len(CASES) >= 14


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_golden_graph(case: Path) -> None:
    golden = json.loads(case.read_text())
    spans = case_spans(golden)
    names = {span_id(row["id"]): row["id"] for row in golden["spans"]}
    edges = edges_from_trace(spans, golden["new_from"])
    got = [edge_row(edge, names) for edge in edges]
    if UPDATE:
        case.write_text(dump_case({**golden, "edges": got}))
    assert got == golden["edges"]
    assert case.read_text() == dump_case(golden), "golden file not in canonical layout"


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_the_trace_record_carries_the_golden_calls(case: Path) -> None:
    # The record pairs at emission, on the analysis it builds anyway: the same calls.
    golden = json.loads(case.read_text())
    spans = case_spans(golden)
    names = {span_id(row["id"]): row["id"] for row in golden["spans"]}
    record = build_trace_record(
        spans,
        version=2,
        completion="complete",
        emitted_at_unix_nano=BASE_NS,
        include_spans=False,
        previous_span_count=golden["new_from"],
    )
    calls = [
        edge_row(EdgeObservation(**call, trace_id=TRACE_ID), names) for call in record["calls"]
    ]
    assert calls == golden["edges"]


# Properties over random traces, garbage included: no crash, and the laws every graph keeps.

_SERVICES = ["api", "db", "cache", "unknown_service"]


def sid(i: int) -> str:
    return f"{i + 1:016x}"


_ORIGINS = ["tracepipe", "zipkin_json"]
_TEXT_ATTRIBUTES = sorted(GRAPH_ATTRIBUTES - {"zipkin.shared"})


@st.composite
def traces(draw: st.DrawFn, garbage: bool = True, mixed: bool = True) -> list[Span]:
    """A random trace of kinds, services, peer attributes, links and origins (OpenTelemetry
    rules, Zipkin's, or, with `mixed`, both in one trace); with `garbage`, also missing, self,
    later and cyclic parents and duplicate span ids, else parents come first."""
    count = draw(st.integers(min_value=0, max_value=30))
    origin = draw(st.sampled_from([*_ORIGINS, "mixed"] if mixed else _ORIGINS))
    spans: list[Span] = []
    for i in range(count):
        highest = count + 2 if garbage else i  # sid(i) itself is missing when not garbage
        parent = draw(st.one_of(st.just(""), st.integers(0, highest).map(sid)))
        if not garbage and parent == sid(i):
            parent = sid(count + 5)  # an orphan
        span_index = draw(st.integers(0, count)) if garbage and draw(st.booleans()) else i
        start = draw(st.integers(min_value=0, max_value=1_000))
        attributes: dict[str, Any] = draw(
            st.dictionaries(
                st.sampled_from(_TEXT_ATTRIBUTES),
                st.sampled_from(["", "pg", "kafka", "ext", "api"]),
                max_size=2,
            )
        )
        if draw(st.booleans()):
            attributes["zipkin.shared"] = True
        links: list[SpanLink] = [
            {"trace_id": TRACE_ID, "span_id": sid(j), "trace_state": "", "attributes": {}}
            for j in draw(st.lists(st.integers(0, count + 1), max_size=2))
        ]
        spans.append(
            make_span(
                TRACE_ID,
                sid(span_index),
                "op",
                draw(st.sampled_from(_SERVICES)),
                start,
                start + draw(st.integers(min_value=-5, max_value=2_000)),
                parent_span_id=parent,
                kind=draw(st.sampled_from(SPAN_KINDS)),
                status_code=draw(st.sampled_from(["UNSET", "OK", "ERROR"])),
                attributes=attributes,
                links=links,
                source_format=draw(st.sampled_from(_ORIGINS)) if origin == "mixed" else origin,
            )
        )
    return spans


@settings(max_examples=150, deadline=None)
@given(traces(), st.integers(min_value=0, max_value=32))
def test_graph_laws(spans: list[Span], new_from: int) -> None:
    edges = edges_from_trace(spans, 0)
    ids = {s["span_id"] for s in spans}
    for edge in edges:
        assert edge.span_id in ids
        assert edge.trace_id == TRACE_ID
        assert edge.duration_ns >= 0
        assert edge.client
        assert edge.server
        assert edge.connection_type in ("", "messaging_system", "database", "virtual_node")
    # A version reports some of the calls of its whole trace; none when no span is new.
    assert not Counter(edges_from_trace(spans, new_from)) - Counter(edges)
    assert edges_from_trace(spans, len(spans)) == []


@settings(max_examples=150, deadline=None)
@given(traces(garbage=False, mixed=False), st.data())
def test_a_version_does_not_repeat_what_earlier_versions_counted(
    spans: list[Span], data: st.DataObject
) -> None:
    """The calls of the whole trace that `new_from` leaves out were all decided by the spans
    before it: an earlier version (the prefix) counted each of them already."""
    new_from = data.draw(st.integers(0, len(spans)))
    whole = Counter(edges_from_trace(spans, 0))
    left_out = whole - Counter(edges_from_trace(spans, new_from))
    assert not left_out - Counter(edges_from_trace(spans[:new_from], 0))
