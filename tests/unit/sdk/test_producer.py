"""SpanProducer: the fast encoder matches fastavro byte for byte; failures surface clearly."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.errors import SchemaError, TracepipeError
from streams.model.codec import AvroCodec
from streams.model.partition import trace_partition
from streams.model.span import Span, make_span
from streams.model.span_encoder import avro_array, encode_span_fast
from streams.sdk import ProducerQueueFullError, SpanEncoder, SpanProducer

CODEC = AvroCodec("span")
BATCH_CODEC = AvroCodec("span", array=True)
UNREACHABLE = "127.0.0.1:1"  # nothing listens on port 1: connections are refused at once
QUIET = {"log_level": 0}  # librdkafka's connection-refused lines are expected here


def full_span() -> Span:
    return make_span(
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
        "GET /cart",
        "cart",
        1_700_000_000_000_000_000,
        1_700_000_000_250_000_000,
        parent_span_id="00f067aa0ba902b7",
        trace_state="congo=t61rcWkgMzE",
        kind="SERVER",
        status_code="ERROR",
        status_message="boom",
        scope_name="lib",
        scope_version="1.2",
        resource_attributes={"service.name": "cart", "host.cpus": 2, "é": "ünïcode"},
        attributes={
            "http.status_code": 500,
            "retry": True,
            "ratio": 0.5,
            "tags": ["a", "b"],
            "raw": b"\x00\x01",
            "none": None,
            "neg": -3,
            "big": -(2**63),
            "mixed": [1, 2.5, True, None, b"x", "s"],
            "empty": [],
        },
        events=[
            {
                "time_unix_nano": 1_700_000_000_100_000_000,
                "name": "exception",
                "attributes": {"exception.type": "ValueError"},
            },
            {"time_unix_nano": 5, "name": "e2", "attributes": {}},
        ],
        links=[
            {
                "trace_id": "1" * 32,
                "span_id": "2" * 16,
                "trace_state": "a=b",
                "attributes": {"k": 1},
            }
        ],
    )


def test_fast_encoder_matches_fastavro_on_every_field() -> None:
    span = full_span()
    assert encode_span_fast(span) == CODEC.encode(span)
    assert CODEC.decode(encode_span_fast(span), CODEC.fingerprint) == span


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=300),
    st.binary(max_size=20),
)
attribute_maps = st.dictionaries(
    st.text(max_size=10), st.one_of(scalars, st.lists(scalars, max_size=4)), max_size=6
)
longs = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@settings(max_examples=300, deadline=None)
@given(
    attributes=attribute_maps,
    resource=attribute_maps,
    start=longs,
    end=longs,
    name=st.text(max_size=40),
    event_time=longs,
)
def test_fast_encoder_matches_fastavro_on_generated_spans(
    attributes: dict[str, Any],
    resource: dict[str, Any],
    start: int,
    end: int,
    name: str,
    event_time: int,
) -> None:
    span = make_span(
        "a" * 32,
        "b" * 16,
        name,
        "svc",
        start,
        end,
        attributes=attributes,
        resource_attributes=resource,
        events=[{"time_unix_nano": event_time, "name": name, "attributes": attributes}],
    )
    assert encode_span_fast(span) == CODEC.encode(span)


def test_encoder_falls_back_to_fastavro_for_partial_spans() -> None:
    span = full_span()
    partial = {k: v for k, v in span.items() if k not in ("events", "links", "trace_state")}
    encoded = SpanEncoder(CODEC).encode(partial)  # type: ignore[arg-type]
    decoded = CODEC.decode(encoded, CODEC.fingerprint)
    assert decoded["events"] == [] and decoded["links"] == [] and decoded["trace_state"] == ""


def test_encoder_names_a_span_that_does_not_match_the_schema() -> None:
    span = full_span()
    span["kind"] = "SIDEWAYS"
    with pytest.raises(SchemaError, match="span does not match"):
        SpanEncoder(CODEC).encode(span)


def test_queue_full_raises_a_clear_error() -> None:
    producer = SpanProducer(
        UNREACHABLE,
        "t.spans",
        partitions=1,
        queue_max_spans=3,
        queue_full_wait_s=0.2,
        extra_config={"message.timeout.ms": 60_000, **QUIET},
    )
    try:
        for _ in range(3):
            producer.send(full_span())
        started = time.monotonic()
        with pytest.raises(ProducerQueueFullError, match="stayed full") as caught:
            producer.send(full_span())
        assert time.monotonic() - started < 5
        assert "check that Kafka is reachable" in str(caught.value)
        assert "queue_max_spans" in str(caught.value)
        assert producer.sent == 3 and producer.queued == 3
    finally:
        producer.close(timeout_s=0)


def test_delivery_failures_are_counted_and_reported() -> None:
    failures: list[tuple[str, bytes | None]] = []
    producer = SpanProducer(
        UNREACHABLE,
        "t.spans",
        partitions=1,
        on_delivery_error=lambda err, key: failures.append((err.str(), key)),
        extra_config={"message.timeout.ms": 300, **QUIET},
    )
    spans = [full_span() for _ in range(5)]
    assert producer.send_many(spans) == 5
    assert producer.flush(timeout_s=10) == 0
    assert producer.failed == 5 and producer.delivered == 0 and producer.sent == 5
    assert len(failures) == 5
    assert {key for _, key in failures} == {spans[0]["trace_id"].encode()}
    producer.close()


def test_close_is_idempotent_and_context_manager_closes() -> None:
    with SpanProducer(UNREACHABLE, "t.spans", extra_config=QUIET) as producer:
        pass
    producer.close()
    assert producer.queued == 0


@pytest.mark.parametrize("count", [0, 1, 2, 300])
def test_a_span_batch_is_the_avro_array_fastavro_writes(count: int) -> None:
    spans = [
        make_span(f"{i + 1:032x}", f"{i + 1:016x}", "op", "svc", i, i + 5) for i in range(count)
    ]
    batch = avro_array([encode_span_fast(s) for s in spans])
    assert batch == BATCH_CODEC.encode(spans)
    assert BATCH_CODEC.decode(batch, BATCH_CODEC.fingerprint) == spans


def test_the_batch_schema_has_its_own_fingerprint_and_reads_released_span_schemas() -> None:
    assert BATCH_CODEC.fingerprint != CODEC.fingerprint
    assert BATCH_CODEC.knows(BATCH_CODEC.fingerprint) and not BATCH_CODEC.knows(CODEC.fingerprint)
    assert not CODEC.knows(BATCH_CODEC.fingerprint)


def test_trace_partition_is_fausts_partitioner() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    everywhere = list(range(6))
    for i in range(200):
        trace_id = f"{i * 7919:032x}"
        expected = DefaultPartitioner()(trace_id.encode(), everywhere, everywhere)
        assert trace_partition(trace_id, 6) == expected


def test_batching_settings_are_checked() -> None:
    with pytest.raises(TracepipeError, match="batch_max_spans >= 1"):
        SpanProducer(UNREACHABLE, "t.spans", batch_max_spans=0, extra_config=QUIET)


def test_an_unreachable_broker_is_named_when_partitions_are_needed() -> None:
    producer = SpanProducer(UNREACHABLE, "t.spans", metadata_timeout_s=0.5, extra_config=QUIET)
    with producer, pytest.raises(TracepipeError, match="check that Kafka is reachable"):
        producer.send(full_span())
