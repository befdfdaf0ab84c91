"""Golden error origins: tests/testdata/assemble/error_origins/*.json hold span sets (the
analysis goldens' compact rows, see test_analysis_golden) and the origins they must give, each
`[span name, service, operation, status message, propagated-to services, reached root]`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.assemble.error_origins import error_origins
from streams.assemble.record import TRACE_SCHEMA, build_trace_record
from streams.assemble.record_codec import TraceRecordEncoder
from streams.assemble.structure import analyze_structure
from streams.model.codec import AvroCodec
from streams.model.span import span_rows
from tests.unit.assemble.test_analysis_golden import BASE_NS, build_spans, span_id

GOLDEN = Path(__file__).resolve().parents[2] / "testdata" / "assemble" / "error_origins"
CASES = sorted(GOLDEN.glob("*.json"))
CODEC = AvroCodec("trace")


def test_there_are_golden_cases() -> None:
    assert len(CASES) >= 6


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_golden_error_origins(case: Path) -> None:
    golden = json.loads(case.read_text())
    spans = build_spans(golden["spans"])
    names = {span_id(row[0]): row[0] for row in golden["spans"]}
    record = build_trace_record(
        spans, version=1, completion="complete", emitted_at_unix_nano=BASE_NS + 1_000
    )
    found = [
        [
            names[o["span_id"]],
            o["service"],
            o["operation"],
            o["status_message"],
            o["propagated_to"],
            o["reached_root"],
        ]
        for o in record["error_origins"]
    ]
    assert found == golden["expect"]
    # The same whichever order the spans arrive in, and from span rows as from dicts.
    assert error_origins(analyze_structure(span_rows(spans[::-1]))) == record["error_origins"]
    # The record carries them through Avro, the hand encoder writing fastavro's bytes.
    assert CODEC.decode(CODEC.encode(record), CODEC.fingerprint) == record
    assert TraceRecordEncoder(CODEC).encode(record) == CODEC.encode(record)


class HandPathOnly(AvroCodec):
    """A trace codec that refuses to encode: TraceRecordEncoder's fastavro fallback fails."""

    def encode(self, record: object) -> bytes:
        raise AssertionError("TraceRecordEncoder fell back to fastavro")


def test_records_with_error_origins_take_the_hand_path_together() -> None:
    records = [
        build_trace_record(
            build_spans(json.loads(case.read_text())["spans"]),
            version=1,
            completion="complete",
            emitted_at_unix_nano=BASE_NS,
        )
        for case in CASES
    ]
    assert any(r["error_origins"] for r in records)
    encoded = TraceRecordEncoder(HandPathOnly(TRACE_SCHEMA)).encode_many(records)
    assert encoded == [CODEC.encode(r) for r in records]
