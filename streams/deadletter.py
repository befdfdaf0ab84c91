"""Dead letters: a rejected record's original bytes plus where it came from and why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.errors import DecodeError

REASON_HEADER = "tracepipe-dlq-reason"
DETAIL_HEADER = "tracepipe-dlq-detail"
STAGE_HEADER = "tracepipe-dlq-stage"
SOURCE_TOPIC_HEADER = "tracepipe-source-topic"
SOURCE_PARTITION_HEADER = "tracepipe-source-partition"
SOURCE_OFFSET_HEADER = "tracepipe-source-offset"
ORIGINAL_BYTES_HEADER = "tracepipe-dlq-original-bytes"
"""Present only on a cut dead letter: the original value's length (the whole record stays at
its source offset while the topic retains it)."""

_MAX_DETAIL_BYTES = 1024

DEAD_LETTER_MAX_BYTES = 900_000
"""The most key and value bytes a dead letter carries: under the worker producer's 1,000,000-byte
request (Faust's producer_max_request_size) with the headers. The broker takes records up to
1 MiB, so a rejected record can be larger: sent whole, it failed aiokafka's size check
(MessageSizeTooLargeError) and crashed the agent that rejected it; Faust restarted the agent, and
nothing after the record on its partition was stored."""


@dataclass(frozen=True)
class DeadLetter:
    """One record bound for the dead-letter topic: the original key and value, and headers."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]

    def header(self, name: str) -> str | None:
        """The decoded value of a header, or None."""
        for k, v in self.headers:
            if k == name:
                return v.decode("utf-8", "replace")
        return None


def dead_letter(
    *,
    key: bytes | None,
    value: bytes,
    stage: str,
    reason: str,
    detail: str,
    source_topic: str,
    source_partition: int,
    source_offset: int,
) -> DeadLetter:
    """Build the dead letter for a record `stage` rejected for `reason` (a short slug); a record
    over DEAD_LETTER_MAX_BYTES keeps its first bytes and says how long its value was."""
    extra: list[tuple[str, bytes]] = []
    if len(key or b"") + len(value) > DEAD_LETTER_MAX_BYTES:
        extra.append((ORIGINAL_BYTES_HEADER, str(len(value)).encode()))
        key = key[: DEAD_LETTER_MAX_BYTES // 2] if key is not None else None
        value = value[: DEAD_LETTER_MAX_BYTES - len(key or b"")]
    return DeadLetter(
        key=key,
        value=value,
        headers=[
            (REASON_HEADER, reason.encode()),
            (DETAIL_HEADER, detail.encode("utf-8", "replace")[:_MAX_DETAIL_BYTES]),
            (STAGE_HEADER, stage.encode()),
            (SOURCE_TOPIC_HEADER, source_topic.encode()),
            (SOURCE_PARTITION_HEADER, str(source_partition).encode()),
            (SOURCE_OFFSET_HEADER, str(source_offset).encode()),
            *extra,
        ],
    )


def rejected_event(
    event: Any, stage: str, err: DecodeError, value: bytes | None = None
) -> DeadLetter:
    """The dead letter for a Faust event rejected by `stage` (value defaults to the event's)."""
    message = event.message
    return dead_letter(
        key=message.key,
        value=value if value is not None else (message.value or b""),
        stage=stage,
        reason=err.reason,
        detail=err.detail,
        source_topic=message.topic,
        source_partition=message.partition,
        source_offset=message.offset,
    )
