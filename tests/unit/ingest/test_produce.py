"""Files split into payloads the way `tracepipe produce` reads them."""

from __future__ import annotations

from streams.ingest.produce import ProduceReport, split_payloads


def test_one_json_document_is_one_payload() -> None:
    doc = b'{\n  "resourceSpans": []\n}\n'
    assert list(split_payloads(doc)) == [doc.strip()]


def test_json_lines_are_one_payload_each() -> None:
    data = b'{"resourceSpans": []}\n\n[{"traceId": "1"}]\n'
    assert list(split_payloads(data)) == [b'{"resourceSpans": []}', b'[{"traceId": "1"}]']


def test_protobuf_is_one_payload() -> None:
    data = b"\x0a\x02\x0a\x00"
    assert list(split_payloads(data)) == [data]


def test_summary_names_rejections() -> None:
    report = ProduceReport(payloads=2, spans_sent=5)
    report.rejected["invalid-trace-id"] += 2
    assert report.summary() == ("sent 5 spans from 2 payloads; rejected 2 (invalid-trace-id=2)")
