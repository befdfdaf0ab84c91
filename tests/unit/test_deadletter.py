"""A dead letter keeps the original bytes and says where they came from and why."""

from __future__ import annotations

from aiokafka.record.default_records import DefaultRecordBatchBuilder

from streams.deadletter import (
    DEAD_LETTER_MAX_BYTES,
    ORIGINAL_BYTES_HEADER,
    REASON_HEADER,
    SOURCE_OFFSET_HEADER,
    dead_letter,
)


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


def test_a_record_too_large_to_send_again_is_cut_to_fit_the_producer() -> None:
    # The broker takes records up to 1 MiB; the worker's producer sends at most 1,000,000 bytes
    # a request (Faust's producer_max_request_size): a whole 1.04 MB poison record crashed it.
    original = bytes(range(256)) * 4_100
    letter = dead_letter(
        key=b"k" * 20_000,
        value=original,
        stage="span-sink",
        reason="avro-decode",
        detail="x" * 5000,
        source_topic="tracepipe.spans",
        source_partition=3,
        source_offset=42,
    )
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(
        letter.key, letter.value, letter.headers
    )
    assert size <= 1_000_000
    assert original.startswith(letter.value) and len(letter.value) > 800_000
    assert letter.header(ORIGINAL_BYTES_HEADER) == str(len(original))
    assert letter.header(SOURCE_OFFSET_HEADER) == "42"


def test_a_record_that_fits_is_kept_whole() -> None:
    value = b"\x00" * DEAD_LETTER_MAX_BYTES
    letter = dead_letter(
        key=None,
        value=value,
        stage="span-sink",
        reason="avro-decode",
        detail="",
        source_topic="tracepipe.spans",
        source_partition=0,
        source_offset=1,
    )
    assert letter.value == value and letter.header(ORIGINAL_BYTES_HEADER) is None
