"""A dead letter keeps the original bytes and says where they came from and why."""

from __future__ import annotations

from aiokafka.record.default_records import DefaultRecordBatchBuilder

from streams.deadletter import (
    DEAD_LETTER_MAX_BYTES,
    ORIGINAL_BYTES_HEADER,
    REASON_HEADER,
    SOURCE_OFFSET_HEADER,
    DeadLetter,
    dead_letter,
)


def span_sink_letter(key: bytes | None, value: bytes) -> DeadLetter:
    """The span sink's dead letter of a record at tracepipe.spans partition 3, offset 42."""
    return dead_letter(
        key=key,
        value=value,
        stage="span-sink",
        reason="avro-decode",
        detail="x" * 5000,
        source_topic="tracepipe.spans",
        source_partition=3,
        source_offset=42,
    )


def test_dead_letter_headers() -> None:
    letter = span_sink_letter(b"k", b"\x00bad")
    assert letter.value == b"\x00bad" and letter.key == b"k"
    assert letter.header(REASON_HEADER) == "avro-decode"
    assert letter.header(SOURCE_OFFSET_HEADER) == "42"
    assert letter.header("tracepipe-source-partition") == "3"
    assert len(letter.header("tracepipe-dlq-detail") or "") == 1024
    assert letter.header("missing") is None


def test_a_record_too_large_to_send_again_is_cut_to_fit_the_producer() -> None:
    # The broker takes records up to 1 MiB; the worker's producer sends at most 1,000,000 bytes
    # a request (Faust's producer_max_request_size): a whole 1.04 MB record crashed the span sink.
    original = bytes(range(256)) * 4_100
    letter = span_sink_letter(b"k" * 20_000, original)
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(
        letter.key, letter.value, letter.headers
    )
    assert size <= 1_000_000
    assert original.startswith(letter.value) and len(letter.value) > 800_000
    assert letter.header(ORIGINAL_BYTES_HEADER) == str(len(original))
    assert letter.header(SOURCE_OFFSET_HEADER) == "42"


def test_a_record_that_fits_is_kept_whole() -> None:
    value = b"\x00" * DEAD_LETTER_MAX_BYTES
    letter = span_sink_letter(None, value)
    assert letter.value == value and letter.header(ORIGINAL_BYTES_HEADER) is None
