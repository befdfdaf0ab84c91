"""Golden files: each payload in tests/testdata/ingest converts to exactly its expected spans.

Regenerate the expected files after a deliberate change with
`TRACEPIPE_UPDATE_GOLDEN=1 pytest tests/unit/ingest/test_golden.py`, then review the diff.
"""

from __future__ import annotations

import base64
import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from streams.config import IngestConfig
from streams.ingest import detect_format, spans_from_payload, validate_span
from streams.model.span import Span

TESTDATA = Path(__file__).resolve().parents[2] / "testdata" / "ingest"
UPDATE = os.environ.get("TRACEPIPE_UPDATE_GOLDEN") == "1"


def jsonable(value: Any) -> Any:
    """Spans as JSON: bytes become {"$base64": ...} so expected files stay plain JSON."""
    if isinstance(value, bytes):
        return {"$base64": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def otlp_proto_bytes(otlp_json: bytes) -> bytes:
    """The same request as protobuf, built by protobuf's own JSON parser (ids hex -> base64)."""
    doc = json.loads(otlp_json)
    for resource_spans in doc["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for holder in [span, *span.get("links", [])]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if holder.get(key):
                            holder[key] = base64.b64encode(bytes.fromhex(holder[key])).decode()
    request = json_format.ParseDict(doc, ExportTraceServiceRequest())
    return bytes(request.SerializeToString())


def payload(name: str, source_format: str) -> bytes:
    data = (TESTDATA / name).read_bytes()
    return otlp_proto_bytes(data) if source_format == "otlp_proto" else data


CASES = [
    ("otlp_trace.json", "otlp_json", "otlp_trace.spans.json"),
    ("otlp_trace.json", "otlp_proto", "otlp_trace.spans.json"),
    ("zipkin_spans.json", "zipkin_json", "zipkin_spans.spans.json"),
    ("tracepipe_spans.json", "tracepipe_json", "tracepipe_spans.spans.json"),
]


@pytest.mark.parametrize(("source", "source_format", "expected"), CASES)
def test_golden(source: str, source_format: str, expected: str) -> None:
    spans = spans_from_payload(payload(source, source_format), source_format)
    got = jsonable(spans)
    # The OTLP proto case shares the JSON case's expected file but for source_format.
    for span in got:
        if span["source_format"] == "otlp_proto":
            span["source_format"] = "otlp_json"
    path = TESTDATA / expected
    if UPDATE and source_format != "otlp_proto":
        path.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n")
    assert got == json.loads(path.read_text())


@pytest.mark.parametrize(("source", "source_format", "expected"), CASES)
def test_golden_spans_pass_validation_unchanged(
    source: str, source_format: str, expected: str
) -> None:
    spans = spans_from_payload(payload(source, source_format), source_format)
    for span in spans:
        before: Span = copy.deepcopy(span)
        assert validate_span(span, IngestConfig()) == before


@pytest.mark.parametrize(
    ("source", "source_format"),
    [(source, fmt) for source, fmt, _ in CASES],
)
def test_detect_format_of_golden_inputs(source: str, source_format: str) -> None:
    assert detect_format(payload(source, source_format)) == source_format


def test_otlp_json_and_proto_give_the_same_spans() -> None:
    data = (TESTDATA / "otlp_trace.json").read_bytes()
    from_json = spans_from_payload(data, "otlp_json")
    from_proto = spans_from_payload(otlp_proto_bytes(data), "otlp_proto")
    assert len(from_json) == 3
    for a, b in zip(from_json, from_proto, strict=True):
        assert {**a, "source_format": ""} == {**b, "source_format": ""}


def test_otlp_parent_structure_is_preserved() -> None:
    spans = spans_from_payload((TESTDATA / "otlp_trace.json").read_bytes(), "otlp_json")
    by_id = {s["span_id"]: s for s in spans}
    root = by_id["eee19b7ec3c1b174"]
    client = by_id["7a2190356c3fc94b"]
    server = by_id["0b2fd3a4c5e6f701"]
    assert root["parent_span_id"] == ""
    assert client["parent_span_id"] == root["span_id"]
    assert server["parent_span_id"] == client["span_id"]
    assert {s["trace_id"] for s in spans} == {"5b8efff798038103d269b633813fc60c"}
    assert (root["service_name"], server["service_name"]) == ("frontend", "payments")


def test_zipkin_shared_server_span_gets_its_own_id_under_the_client() -> None:
    spans = spans_from_payload((TESTDATA / "zipkin_spans.json").read_bytes(), "zipkin_json")
    client = next(s for s in spans if s["kind"] == "CLIENT")
    server = next(s for s in spans if s["attributes"].get("zipkin.shared"))
    child = next(s for s in spans if s["name"] == "select stock")
    assert server["span_id"] != client["span_id"]
    assert server["parent_span_id"] == client["span_id"]
    assert server["attributes"]["zipkin.original_span_id"] == client["span_id"]
    assert child["parent_span_id"] == server["span_id"]  # same service, same payload
    assert len({s["span_id"] for s in spans}) == len(spans)
    consumer = next(s for s in spans if s["kind"] == "CONSUMER")
    producer = next(s for s in spans if s["kind"] == "PRODUCER")
    assert consumer["parent_span_id"] == producer["span_id"]


@pytest.mark.parametrize(("source", "source_format", "expected"), CASES)
def test_golden_spans_encode_with_the_span_schema(
    source: str, source_format: str, expected: str
) -> None:
    from streams.model.codec import AvroCodec

    codec = AvroCodec("span")
    for span in spans_from_payload(payload(source, source_format), source_format):
        assert codec.encode(span)
