"""Golden Zipkin dependency links: Zipkin v2 spans, through our Zipkin bridge and the pairing,
give exactly the links Zipkin's DependencyLinker computes (openzipkin/zipkin,
zipkin/src/test/java/zipkin2/internal/DependencyLinkerTest.java: its cases re-derived here from
the linker's rules, plus cases of our own), and these exact edges.

tests/testdata/assemble/graph_zipkin.json is a list of cases {"name", "anchor",
"description", "payloads", "links", "edges"}. `payloads` are Zipkin span lists, each decoded
as one message of the Zipkin topic; a span is compact: `id` and `parent` are short hex names
padded to 16 digits, `local` / `remote` the endpoints' service names, `kind`, `shared`,
`error` (Zipkin's error tag), `tags` and `annotations` as Zipkin has them, `ts` / `dur` in
microseconds (default 0 / 10) after BASE_US. `links` are Zipkin's answer, [parent, child,
calls, errors]; `edges` are our observations (end times in nanoseconds after BASE_US; span ids
by name, a shared server half as "<id>/shared", the id our ingest gives it).

Regenerate the expected edges after a deliberate change with
`TRACEPIPE_UPDATE_GOLDEN=1 pytest tests/unit/assemble/test_graph_zipkin.py`, then review the
diff; `links` are never regenerated.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from streams.assemble.compact import CompactSpans
from streams.assemble.edges import EdgeObservation
from streams.assemble.graph import edges_from_trace
from streams.assemble.record import build_trace_record
from streams.ingest.zipkin import ORIGINAL_SPAN_ID_ATTRIBUTE, spans_from_zipkin_json
from streams.model.column_codec import columns_from_spans
from streams.model.span import Span, make_span
from tests.unit.assemble.golden_layout import dump_payload_cases

GOLDEN = Path(__file__).resolve().parents[2] / "testdata" / "assemble" / "graph_zipkin.json"
UPDATE = os.environ.get("TRACEPIPE_UPDATE_GOLDEN") == "1"
TRACE_ID = "463ac35c9f6413ad48485a3953bb6124"
BASE_US = 1_700_000_000_000_000


def zipkin_span(row: dict[str, Any]) -> dict[str, Any]:
    """A Zipkin v2 JSON span from a compact golden row."""
    span: dict[str, Any] = {
        "traceId": TRACE_ID,
        "id": row["id"].rjust(16, "0"),
        "name": row.get("name", row["id"]),
        "timestamp": BASE_US + row.get("ts", 0),
        "duration": row.get("dur", 10),
    }
    if "parent" in row:
        span["parentId"] = row["parent"].rjust(16, "0")
    for key in ("kind", "shared", "annotations"):
        if key in row:
            span[key] = row[key]
    if "local" in row:
        span["localEndpoint"] = {"serviceName": row["local"]}
    if "remote" in row:
        span["remoteEndpoint"] = {"serviceName": row["remote"]}
    tags = dict(row.get("tags", {}))
    if row.get("error"):
        tags["error"] = ""
    if tags:
        span["tags"] = tags
    return span


def case_spans(case: dict[str, Any]) -> list[Span]:
    """The canonical spans of a case's payloads, as the Zipkin bridge makes them."""
    spans: list[Span] = []
    for payload in case["payloads"]:
        data = json.dumps([zipkin_span(row) for row in payload]).encode()
        spans.extend(spans_from_zipkin_json(data))
    return spans


def span_name(span: Span) -> str:
    """A span's golden name: its short id, a shared server half's with "/shared"."""
    original = span["attributes"].get(ORIGINAL_SPAN_ID_ATTRIBUTE)
    if isinstance(original, str):
        return original.lstrip("0") + "/shared"
    return span["span_id"].lstrip("0")


def edge_row(edge: EdgeObservation, names: dict[str, str]) -> dict[str, Any]:
    """An observation as a golden edge."""
    row = edge._asdict()
    assert row.pop("trace_id") == TRACE_ID
    row["end_time_unix_nano"] -= BASE_US * 1000
    row["span_id"] = names[edge.span_id]
    return row


def links_of(edges: list[dict[str, Any]]) -> list[list[Any]]:
    """Edges summed into Zipkin's dependency links, [parent, child, calls, errors], sorted."""
    calls: Counter[tuple[str, str]] = Counter()
    errors: Counter[tuple[str, str]] = Counter()
    for edge in edges:
        pair = (edge["client"], edge["server"])
        calls[pair] += 1
        errors[pair] += edge["error"]
    return sorted([parent, child, n, errors[parent, child]] for (parent, child), n in calls.items())


def dump_cases(cases: list[dict[str, Any]]) -> str:
    """The cases as JSON with one span, link or edge per line."""
    scalars = ("name", "anchor", "description")
    return dump_payload_cases(cases, scalars, "payloads", ("links", "edges"))


CASES: list[dict[str, Any]] = json.loads(GOLDEN.read_text())


def test_the_golden_file_is_canonical() -> None:
    assert len(CASES) >= 30
    assert len({case["name"] for case in CASES}) == len(CASES)
    if not UPDATE:
        assert GOLDEN.read_text() == dump_cases(CASES), "golden file not in canonical layout"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case["name"])
def test_zipkin_links(case: dict[str, Any]) -> None:
    spans = case_spans(case)
    names = {span["span_id"]: span_name(span) for span in spans}
    got = [edge_row(edge, names) for edge in edges_from_trace(spans)]
    if UPDATE:
        case["edges"] = got
        GOLDEN.write_text(dump_cases(CASES))
    assert links_of(got) == sorted(case["links"]), "not Zipkin's dependency links"
    assert got == case["edges"]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case["name"])
def test_the_trace_record_carries_the_zipkin_links(case: dict[str, Any]) -> None:
    spans = case_spans(case)
    names = {span["span_id"]: span_name(span) for span in spans}
    record = build_trace_record(
        spans, version=1, completion="complete", emitted_at_unix_nano=0, include_spans=False
    )
    calls = [
        edge_row(EdgeObservation(**call, trace_id=TRACE_ID), names) for call in record["calls"]
    ]
    assert calls == case["edges"]


def test_a_trace_with_other_spans_keeps_the_opentelemetry_rules() -> None:
    # One OTLP span (c) in the trace: the OpenTelemetry rules, so the root's "user" client, and
    # the kind-less Zipkin spans naming both services are CLIENT spans, as in Zipkin's model: b
    # pairs with c, d calls its uninstrumented peer (Zipkin alone: web -> app twice, from b and
    # from c, and web -> billing).
    data = json.dumps(
        [
            zipkin_span({"id": "a", "kind": "SERVER", "local": "web", "dur": 100}),
            zipkin_span({"id": "b", "parent": "a", "local": "web", "remote": "app", "dur": 50}),
            zipkin_span({"id": "d", "parent": "a", "local": "web", "remote": "billing"}),
        ]
    ).encode()
    spans = spans_from_zipkin_json(data)
    client = spans[1]
    server = make_span(
        TRACE_ID,
        "c".rjust(16, "0"),
        "GET /app",
        "app",
        client["start_time_unix_nano"],
        client["end_time_unix_nano"],
        parent_span_id=client["span_id"],
        kind="SERVER",
        source_format="otlp_proto",
    )
    edges = [
        (e.client, e.server, e.connection_type, e.duration_ns)
        for e in edges_from_trace([*spans, server])
    ]
    assert edges == [
        ("user", "web", "virtual_node", 100_000),
        ("web", "billing", "virtual_node", 10_000),
        ("web", "app", "", 50_000),
    ]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case["name"])
def test_slim_held_spans_keep_what_the_links_read(case: dict[str, Any]) -> None:
    # Held spans keep only GRAPH_ATTRIBUTES of theirs: enough for Zipkin's rules too.
    spans = case_spans(case)
    rows = CompactSpans(whole=False).encode_columns(columns_from_spans(spans))
    assert edges_from_trace(rows) == edges_from_trace(spans)
