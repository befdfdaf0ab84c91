"""Files split into payloads the way `tracepipe produce` reads them."""

from __future__ import annotations

from streams.errors import DecodeError
from streams.ingest.produce import ProduceReport, split_payloads


def test_one_json_document_is_one_payload() -> None:
    doc = b'{\n  "resourceSpans": []\n}\n'
    assert list(split_payloads(doc)) == [(0, doc.strip())]


def test_json_lines_are_one_payload_each() -> None:
    data = b'{"resourceSpans": []}\n\n[{"traceId": "1"}]\n'
    assert list(split_payloads(data)) == [(1, b'{"resourceSpans": []}'), (3, b'[{"traceId": "1"}]')]


def test_protobuf_is_one_payload() -> None:
    data = b"\x0a\x02\x0a\x00"
    assert list(split_payloads(data)) == [(0, data)]


def test_summary_names_rejections() -> None:
    report = ProduceReport(payloads=2, spans_sent=5)
    report.rejected["invalid-trace-id"] += 2
    assert report.summary() == ("sent 5 spans from 2 payloads; rejected 2 (invalid-trace-id=2)")


def test_a_truncated_document_is_one_payload() -> None:
    # Split into lines, each fragment would be rejected alone, at positions within its line.
    data = b'\n{\n  "resourceSpans": [\n    {"resource": {}\n'
    assert list(split_payloads(data)) == [(0, data)]


def test_json_lines_with_a_truncated_line_are_still_lines() -> None:
    data = b'{"resourceSpans": []}\n{"resourceSpans": [\n'
    assert list(split_payloads(data)) == [
        (1, b'{"resourceSpans": []}'),
        (2, b'{"resourceSpans": ['),
    ]


def test_empty_input_has_no_payloads() -> None:
    assert list(split_payloads(b" \n")) == []


def test_error_lines_give_the_first_rejection_of_each_reason() -> None:
    report = ProduceReport(payloads=3)
    report.reject(DecodeError("unknown-format", "does not parse: line 2 column 1 (char 9)"), "x")
    report.reject(DecodeError("unknown-format", "another"), "y")
    report.reject(DecodeError("invalid-trace-id", "trace_id '' is not 32 hex"), "line 3")
    assert report.summary() == (
        "sent 0 spans from 3 payloads; rejected 3 (invalid-trace-id=1, unknown-format=2)"
    )
    assert report.error_lines() == [
        "invalid-trace-id (line 3): trace_id '' is not 32 hex",
        "unknown-format (x): does not parse: line 2 column 1 (char 9)",
    ]
