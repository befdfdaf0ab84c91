"""RecentRecords: the trace sink takes its own worker's records once, bounded, else decodes."""

from __future__ import annotations

from typing import Any, cast

from streams.assemble.agent import RecentRecords, _message_version
from streams.assemble.record import TraceRecord


def record(trace_id: str, version: int) -> TraceRecord:
    return cast(TraceRecord, {"trace_id": trace_id, "version": version})


class Message:
    """The two fields of a Kafka message the sink reads to match a record."""

    def __init__(self, key: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        self.key, self.headers = key, headers


def test_a_record_is_taken_once_by_id_and_version() -> None:
    recent = RecentRecords()
    first, second = record("a" * 32, 1), record("a" * 32, 2)
    recent.put(first)
    recent.put(second)
    assert recent.take("a" * 32, 2) is second
    assert recent.take("a" * 32, 2) is None  # a redelivered message is decoded instead
    assert recent.take("a" * 32, 1) is first


def test_the_oldest_records_are_dropped_beyond_the_bound() -> None:
    recent = RecentRecords(max_records=3)
    for i in range(5):
        recent.put(record(f"{i:032x}", 1))
    kept = [recent.take(f"{i:032x}", 1) is not None for i in range(5)]
    assert kept == [False, False, True, True, True]


def test_the_message_identity_needs_a_key_and_a_numeric_version() -> None:
    header = [("tracepipe-trace-version", b"3")]
    assert _message_version(Message(b"f" * 32, header)) == ("f" * 32, 3)
    assert _message_version(Message(None, header)) is None
    assert _message_version(Message(b"f" * 32, [])) is None
    bad: Any = Message(b"f" * 32, [("tracepipe-trace-version", b"x")])
    assert _message_version(bad) is None
