"""Raw tracepipe.spans messages -> valid span columns by partition, and dead letters for the
rest: what the span sink agent (streams.worker.sink) stores and hands to assembly."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streams.config import IngestConfig
from streams.deadletter import DeadLetter, rejected_event
from streams.errors import DecodeError
from streams.ingest.validate import check_record_size, validate_columns, validate_span
from streams.model.codec import SCHEMA_HEADER, AvroCodec, header_value
from streams.model.column_codec import SpanColumnsCodec, columns_from_spans
from streams.model.columns import SpanColumns, concat_columns
from streams.model.span import Span

STAGE = "span-sink"

SpansByPartition = dict[int, SpanColumns]
"""A batch's valid spans as columns, by the tracepipe.spans partition they were read from."""


class SpanDecoder:
    """Raw tracepipe.spans messages -> valid span columns. Reads span column batches, span
    batches (an Avro array of spans) and single spans, each named by its schema fingerprint;
    every span is validated on its own, and a rejected one is dead-lettered alone."""

    def __init__(self, limits: IngestConfig) -> None:
        self.limits = limits
        self.span_codec = AvroCodec("span")
        self.batch_codec = AvroCodec("span", array=True)
        self.columns_codec = SpanColumnsCodec()

    def split(self, events: Sequence[Any]) -> tuple[SpansByPartition, list[DeadLetter], int]:
        """Decode and validate a batch of raw events: the spans by partition, dead letters for
        the rest (a bad span of a batch alone, re-encoded as a single span), and how many
        spans were read."""
        parts: dict[int, list[SpanColumns]] = {}
        rejected: list[DeadLetter] = []
        read = 0
        for event in events:
            message = event.message
            value = message.value or b""
            fingerprint = header_value(message.headers, SCHEMA_HEADER)
            try:
                check_record_size(value, self.limits)
                columns, bad, count = self.decode(value, fingerprint)
            except DecodeError as err:
                read += 1
                rejected.append(rejected_event(event, STAGE, err, value))
                continue
            read += count
            single = not (
                self.columns_codec.knows(fingerprint) or self.batch_codec.knows(fingerprint)
            )
            for span, why in bad:
                # Replaying a dead letter must not replay its batch's good spans too, and a
                # dead letter carries no schema header: it is always a single span's body.
                alone = value if single else self.span_codec.encode(span)
                rejected.append(rejected_event(event, STAGE, why, alone))
            if len(columns):
                parts.setdefault(message.partition, []).append(columns)
        spans = {partition: concat_columns(batches) for partition, batches in parts.items()}
        return spans, rejected, read

    def decode(
        self, value: bytes, fingerprint: str | None
    ) -> tuple[SpanColumns, list[tuple[Span, DecodeError]], int]:
        """One message's valid spans, its rejected spans with their errors, and how many spans
        it held; DecodeError when the message cannot be read."""
        if self.columns_codec.knows(fingerprint):
            columns = self.columns_codec.decode(value, fingerprint)
            try:
                valid, bad = validate_columns(columns, self.limits)
            except (ValueError, TypeError, IndexError, OverflowError) as err:
                # Columns that decode but contradict themselves in a way the decoder's checks
                # missed: the message goes to the DLQ with the reason; the agent keeps running.
                raise DecodeError("invalid-columns", f"{type(err).__name__}: {err}") from err
            return valid, bad, len(columns)
        if self.batch_codec.knows(fingerprint):
            spans = self.batch_codec.decode(value, fingerprint)
        else:
            spans = [self.span_codec.decode(value, fingerprint)]
        good: list[Span] = []
        bad = []
        for span in spans:
            try:
                good.append(validate_span(span, self.limits))
            except DecodeError as err:
                bad.append((span, err))
        return columns_from_spans(good), bad, len(spans)
