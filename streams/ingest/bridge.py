"""The bridge's batch: payloads from the `otlp` and `zipkin` topics -> span columns messages for
`spans`, one or more per partition by trace id, and dead letters (a payload that does not convert,
each bad span of a good one alone). The agents in streams.worker.ingest publish what it makes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from streams.config import IngestConfig
from streams.deadletter import DeadLetter, rejected_event
from streams.errors import DecodeError
from streams.ingest import check_record_size, columns_from_payload, validate_span
from streams.ingest.validate import validate_column_rows
from streams.model.column_codec import SpanColumnsCodec, columns_from_spans
from streams.model.columns import SpanColumns, concat_columns
from streams.model.partition import trace_partitions
from streams.model.span import Span

STAGE = "bridge"
BATCH_MAX_BYTES = 512 * 1024

_NO_SPANS = columns_from_spans([])


def payload_format(topic_kind: str, value: bytes) -> str:
    """The encoding of a payload on the `otlp` or `zipkin` topic (OTLP JSON starts with '{')."""
    if topic_kind == "zipkin":
        return "zipkin_json"
    if value.lstrip()[:1] != b"{":
        return "otlp_proto"
    if value[:1] != b"\n":
        return "otlp_json"
    # A protobuf request starts with 0x0a (its first field's tag), which lstrip takes for a
    # newline: when the length after it reads as '{' (123 bytes), only parsing tells them apart.
    try:
        json.loads(value)
    except (ValueError, RecursionError):
        return "otlp_proto"
    return "otlp_json"


@dataclass(frozen=True)
class BridgedBatch:
    """What the bridge makes of a batch of payloads: span columns messages for `spans` as
    (partition, value), the dead letters, and how many spans it republishes."""

    messages: list[tuple[int, bytes]]
    rejected: list[DeadLetter]
    spans: int


def bridge_batch(
    topic_kind: str,
    events: Sequence[Any],
    limits: IngestConfig,
    partitions: int,
    codec: SpanColumnsCodec,
) -> BridgedBatch:
    """Convert and validate a batch of payloads into span columns messages, one or more per
    partition of `spans` (`partitions` of them) by trace id, and dead letters (a payload that
    does not convert as a whole; each bad span of a good one alone, in payload order)."""
    parts: list[SpanColumns] = []
    rows: list[tuple[int, int]] = []  # each row of the joined parts: (event number, position)
    rejected: list[tuple[int, int, DeadLetter]] = []
    for number, event in enumerate(events):
        value: bytes = event.message.value or b""
        try:
            check_record_size(value, limits)
            converted = columns_from_payload(value, payload_format(topic_kind, value))
        except DecodeError as err:
            rejected.append((number, -1, rejected_event(event, STAGE, err)))
            continue
        if len(converted.columns):
            parts.append(converted.columns)
            rows += [(number, position) for position in converted.row_positions()]
        for position, span in converted.misfits:
            why = _misfit_error(span, limits)
            rejected.append((number, position, _span_letter(event, position, span, why)))
    valid = _NO_SPANS
    if parts:
        valid, bad = validate_column_rows(concat_columns(parts), limits)
        for row, span, why in bad:
            number, position = rows[row]
            rejected.append((number, position, _span_letter(events[number], position, span, why)))
    rejected.sort(key=lambda letter: letter[:2])
    messages: list[tuple[int, bytes]] = []
    if len(valid):
        of_span = trace_partitions(valid.trace_id, partitions)
        for partition in np.unique(of_span).tolist():
            part = valid.select(np.flatnonzero(of_span == partition))
            messages += [
                (partition, value) for _, _, value in codec.encode_chunks(part, BATCH_MAX_BYTES)
            ]
    return BridgedBatch(messages, [letter for _, _, letter in rejected], len(valid))


def _misfit_error(span: Span, limits: IngestConfig) -> DecodeError:
    try:
        validate_span(span, limits)
    except DecodeError as err:
        return err
    # validate_span rejects every span the columns cannot hold (PayloadSpans.misfits); were
    # that ever to change, the span would still reach the DLQ rather than vanish.
    return DecodeError("invalid-columns", "the span does not fit span columns")


def _span_letter(event: Any, position: int, span: Span, err: DecodeError) -> DeadLetter:
    # One bad span in a good payload: dead-letter that span alone, as our JSON form.
    err = DecodeError(err.reason, f"span {position} of the payload: {err.detail}")
    return rejected_event(event, STAGE, err, _span_json(span))


def _span_json(span: Span) -> bytes:
    return json.dumps(span, default=lambda v: v.hex() if isinstance(v, bytes) else str(v)).encode()
