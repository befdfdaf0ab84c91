"""SpanDecoder: single spans and span batches in, valid spans by partition and dead letters out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams.config import IngestConfig
from streams.deadletter import REASON_HEADER
from streams.model.codec import AvroCodec
from streams.model.span import Span, make_span
from streams.model.span_encoder import avro_array, encode_span_fast
from streams.sink.decoder import SpanDecoder

SPAN = AvroCodec("span")
BATCH = AvroCodec("span", array=True)


@dataclass
class FakeMessage:
    value: bytes
    headers: list[tuple[str, bytes]]
    partition: int
    offset: int
    key: bytes | None = None
    topic: str = "t.spans"


@dataclass
class FakeEvent:
    """The boundary faked: a Faust event is only read for its message here."""

    message: FakeMessage
    extra: dict[str, Any] = field(default_factory=dict)


def span(i: int, trace_id: str | None = None) -> Span:
    start_ns = 1_700_000_000_000_000_000 + i
    trace_id = trace_id or f"{i + 1:032x}"
    return make_span(trace_id, f"{i + 1:016x}", f"op{i}", "svc", start_ns, start_ns + 10)


def event(value: bytes, codec: AvroCodec, partition: int = 0, offset: int = 0) -> FakeEvent:
    headers = [(k, v) for k, v in codec.headers if isinstance(v, bytes)]
    return FakeEvent(FakeMessage(value, headers, partition, offset))


def test_batches_and_single_spans_are_read_by_partition() -> None:
    batch = [span(i) for i in range(5)]
    lone = span(9)
    events = [
        event(avro_array([encode_span_fast(s) for s in batch]), BATCH, partition=2),
        event(SPAN.encode(lone), SPAN, partition=1),
    ]
    by_partition, rejected, read = SpanDecoder(IngestConfig()).split(events)
    assert rejected == [] and read == 6
    assert [s["span_id"] for s in by_partition[2].spans()] == [s["span_id"] for s in batch]
    assert [s["span_id"] for s in by_partition[1].spans()] == [lone["span_id"]]


def test_a_bad_span_in_a_batch_goes_to_the_dlq_alone_and_the_rest_is_kept() -> None:
    bad = span(3, trace_id="not-a-trace-id")
    batch = [span(0), span(1), bad, span(4)]
    events = [event(avro_array([encode_span_fast(s) for s in batch]), BATCH)]
    by_partition, rejected, read = SpanDecoder(IngestConfig()).split(events)
    assert read == 4
    kept = [s["span_id"] for s in by_partition[0].spans()]
    assert kept == [batch[i]["span_id"] for i in (0, 1, 3)]
    (letter,) = rejected
    assert letter.header(REASON_HEADER) == "invalid-trace-id"
    assert SPAN.decode(letter.value, SPAN.fingerprint) == bad


def test_a_batch_that_cannot_be_read_is_one_dead_letter_with_its_bytes() -> None:
    value = avro_array([encode_span_fast(span(i)) for i in range(3)])[:-7]
    by_partition, rejected, read = SpanDecoder(IngestConfig()).split([event(value, BATCH)])
    assert by_partition == {} and read == 1
    (letter,) = rejected
    assert letter.value == value and letter.header(REASON_HEADER) == "avro-decode"


def test_a_bad_span_alone_in_a_batch_is_dead_lettered_as_a_single_span() -> None:
    bad = span(0, trace_id="not-a-trace-id")
    events = [event(avro_array([encode_span_fast(bad)]), BATCH)]
    by_partition, rejected, read = SpanDecoder(IngestConfig()).split(events)
    assert read == 1 and by_partition == {}
    (letter,) = rejected
    assert SPAN.decode(letter.value, SPAN.fingerprint) == bad
