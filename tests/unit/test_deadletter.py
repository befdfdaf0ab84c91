"""A dead letter keeps the original bytes and says where they came from and why."""

from __future__ import annotations

from streams.deadletter import REASON_HEADER, SOURCE_OFFSET_HEADER, dead_letter


def test_dead_letter_headers() -> None:
    letter = dead_letter(
        key=b"k",
        value=b"\x00bad",
        stage="span-sink",
        reason="avro-decode",
        detail="x" * 5000,
        source_topic="tracepipe.spans",
        source_partition=3,
        source_offset=42,
    )
    assert letter.value == b"\x00bad" and letter.key == b"k"
    assert letter.header(REASON_HEADER) == "avro-decode"
    assert letter.header(SOURCE_OFFSET_HEADER) == "42"
    assert letter.header("tracepipe-source-partition") == "3"
    assert len(letter.header("tracepipe-dlq-detail") or "") == 1024
    assert letter.header("missing") is None
