"""The bridge's pure core, OTLP payloads -> span columns messages + dead letters, stores what
the canonical spans say: web-shop requests give back the generated spans and their otel_traces
rows, odd attribute types convert by the documented rules, and a bad span is dead-lettered with
its reason while its good neighbours go through."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.otlp import otlp_request, otlp_requests
from streams.config import IngestConfig
from streams.deadletter import DETAIL_HEADER, REASON_HEADER
from streams.ingest import detect_format, spans_from_payload
from streams.ingest.bridge import BridgedBatch, bridge_batch, payload_format
from streams.ingest.validate import CLAMPED_END_TIME, UNNAMED_SPAN, validate_span
from streams.model.column_codec import SpanColumnsCodec, columns_from_spans
from streams.model.columns import SpanColumns, concat_columns
from streams.model.partition import trace_partition
from streams.model.span import Span
from streams.sink.spans import OTEL_TRACES_COLUMNS, otel_traces_table, span_row
from tests.unit.bench.test_otlp import web_shop_spans
from tests.unit.ingest.test_golden import otlp_proto_bytes
from tests.unit.model.test_attribute_text import GOLDEN
from tests.unit.sink.test_decoder import FakeEvent, FakeMessage
from tests.unit.sink.test_spans import python_rows

LIMITS = IngestConfig()
CODEC = SpanColumnsCodec()
PARTITIONS = 6
TESTDATA = Path(__file__).resolve().parents[2] / "testdata" / "ingest"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def bridged(payloads: list[bytes], topic_kind: str = "otlp") -> BridgedBatch:
    events = [
        FakeEvent(FakeMessage(value, [], partition=0, offset=i)) for i, value in enumerate(payloads)
    ]
    return bridge_batch(topic_kind, events, LIMITS, PARTITIONS, CODEC)


def republished(batch: BridgedBatch) -> SpanColumns:
    """The messages' spans as one batch, checking each message went to its traces' partition."""
    parts = []
    for partition, value in batch.messages:
        columns = CODEC.decode(value, CODEC.fingerprint)
        assert {trace_partition(s["trace_id"], PARTITIONS) for s in columns.spans()} == {
            partition
        }
        parts.append(columns)
    return concat_columns(parts) if parts else columns_from_spans([])


def by_span_id(spans: list[Span]) -> list[Span]:
    return sorted(spans, key=lambda s: s["span_id"])


def table_rows(columns: SpanColumns) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = otel_traces_table(columns).sort_by("SpanId").to_pylist()
    return rows


def test_web_shop_requests_store_the_generated_spans() -> None:
    spans = web_shop_spans(300)
    batch = bridged(otlp_requests(spans, 500))
    assert batch.rejected == []
    assert batch.spans == len(spans)
    expected = [validate_span({**s, "source_format": "otlp_proto"}, LIMITS) for s in spans]
    columns = republished(batch)
    assert by_span_id(columns.spans()) == by_span_id(expected)
    assert table_rows(columns) == table_rows(columns_from_spans(expected))


def otlp_json(spans: list[dict[str, Any]], resource: list[dict[str, Any]] | None = None) -> bytes:
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": resource
                        or [{"key": "service.name", "value": {"stringValue": "shop"}}]
                    },
                    "scopeSpans": [{"scope": {"name": "lib", "version": "1"}, "spans": spans}],
                }
            ]
        }
    ).encode()


def raw_span(span_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "traceId": TRACE,
        "spanId": span_id,
        "name": "GET /cart",
        "kind": 2,
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000000500000",
        **fields,
    }


ODD_ATTRIBUTES = [
    {"key": "bytes", "value": {"bytesValue": base64.b64encode(b"\x00\xffab").decode()}},
    {"key": "empty", "value": {}},
    {"key": "empty.text", "value": {"stringValue": ""}},
    {"key": "array", "value": {"arrayValue": {"values": [
        {"stringValue": "a"}, {"intValue": "7"}, {"doubleValue": 0.5}, {"boolValue": True},
        {"bytesValue": "AAE="}, {},
        {"arrayValue": {"values": [{"intValue": "1"}]}},
        {"kvlistValue": {"values": [{"key": "b", "value": {"bytesValue": "AAE="}}]}},
    ]}}},
    {"key": "array.empty", "value": {"arrayValue": {}}},
    {"key": "kvlist", "value": {"kvlistValue": {"values": [
        {"key": "z", "value": {"intValue": "-3"}},
        {"key": "a", "value": {"arrayValue": {"values": [{"stringValue": "é"}]}}},
        {"key": "n", "value": {}},
    ]}}},
    {"key": "kvlist.empty", "value": {"kvlistValue": {}}},
    {"key": "int.min", "value": {"intValue": str(-(2**63))}},
    {"key": "double", "value": {"doubleValue": -1.25}},
    {"key": "dup", "value": {"stringValue": "first"}},
    {"key": "dup", "value": {"intValue": "2"}},
]  # fmt: skip
ODD_VALUES: dict[str, Any] = {
    "bytes": b"\x00\xffab",
    "empty": None,
    "empty.text": "",
    # An array holding arrays or maps is kept as its otel_traces text, as maps are.
    "array": '["a",7,0.5,true,"AAE=",null,[1],{"b":"AAE="}]',
    "array.empty": [],
    "kvlist": '{"a":["é"],"n":null,"z":-3}',
    "kvlist.empty": "{}",
    "int.min": -(2**63),
    "double": -1.25,
    "dup": 2,
}


def test_odd_attribute_types_convert_by_the_rules() -> None:
    resource = [{"key": "service.name", "value": {"stringValue": "shop"}}, *ODD_ATTRIBUTES]
    data = otlp_json(
        [
            raw_span(
                "00f067aa0ba902b7",
                attributes=ODD_ATTRIBUTES,
                events=[{"timeUnixNano": "1700000000000100000", "name": "retry",
                         "attributes": ODD_ATTRIBUTES}],
                links=[{"traceId": "ab" * 16, "spanId": "cd" * 8, "traceState": "k=v",
                        "attributes": ODD_ATTRIBUTES}],
            ),
            raw_span("00f067aa0ba902b8", parentSpanId="00f067aa0ba902b7"),
        ],
        resource,
    )  # fmt: skip
    for payload, source_format in ((otlp_proto_bytes(data), "otlp_proto"), (data, "otlp_json")):
        batch = bridged([payload])
        assert batch.rejected == []
        first, second = by_span_id(republished(batch).spans())
        assert first["attributes"] == ODD_VALUES
        assert first["resource_attributes"] == {"service.name": "shop", **ODD_VALUES}
        assert first["events"] == [
            {"time_unix_nano": 1700000000000100000, "name": "retry", "attributes": ODD_VALUES}
        ]
        assert first["links"] == [
            {"trace_id": "ab" * 16, "span_id": "cd" * 8, "trace_state": "k=v",
             "attributes": ODD_VALUES}
        ]  # fmt: skip
        assert (first["parent_span_id"], second["parent_span_id"]) == ("", "00f067aa0ba902b7")
        assert first["source_format"] == second["source_format"] == source_format
        assert (first["service_name"], first["scope_name"], first["scope_version"]) == (
            "shop", "lib", "1",
        )  # fmt: skip
        assert second["attributes"] == {}


def otlp_any_value(value: Any) -> dict[str, Any]:
    """A Python attribute value as an OTLP/JSON AnyValue (a dict as a kvlist)."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        if math.isnan(value):
            return {"doubleValue": "NaN"}
        if math.isinf(value):
            return {"doubleValue": "Infinity" if value > 0 else "-Infinity"}
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return {"arrayValue": {"values": [otlp_any_value(v) for v in value]}}
    pairs = [{"key": k, "value": otlp_any_value(v)} for k, v in value.items()]
    return {"kvlistValue": {"values": pairs}}


def test_otlp_attributes_reach_otel_traces_as_the_collector_writes_them() -> None:
    """Every golden value (tests/unit/model/test_attribute_text.py), sent as OTLP protobuf and
    OTLP/JSON, bridged and stored: otel_traces holds the Collector's text for it, from span
    columns and from span_row alike."""
    attributes = [{"key": case, "value": otlp_any_value(value)} for case, value, _ in GOLDEN]
    expected = {case: text for case, _, text in GOLDEN}
    data = otlp_json([raw_span("00f067aa0ba902b7", attributes=attributes)])
    for payload, source_format in ((otlp_proto_bytes(data), "otlp_proto"), (data, "otlp_json")):
        batch = bridged([payload])
        assert batch.rejected == []
        columns = republished(batch)
        rows = python_rows(otel_traces_table(columns))
        assert rows == [span_row(s) for s in columns.spans()]
        (row,) = (dict(zip(OTEL_TRACES_COLUMNS, r, strict=True)) for r in rows)
        assert row["SpanAttributes"] == {**expected, "tracepipe.source_format": source_format}


IDS = [*(f"00f067aa0ba902{i:02x}" for i in range(8)), "00f067aa"]
BAD = {1: "invalid-parent-span-id", 2: "invalid-start-time", 4: "invalid-link",
       5: "invalid-end-time", 6: "invalid-event-time", 8: "invalid-span-id"}  # fmt: skip
DEAD_LETTERS = TESTDATA / "bridge_dead_letters.json"


def mixed_payload() -> bytes:
    """Nine spans: six bad (BAD says why), one repaired, two good."""
    return otlp_json(
        [
            raw_span(IDS[0]),
            raw_span(IDS[1], parentSpanId="0" * 16),  # columns cannot hold an all-zero parent
            raw_span(IDS[2], startTimeUnixNano="0"),
            raw_span(IDS[3], name="", endTimeUnixNano="1"),  # repaired: named, end clamped
            raw_span(IDS[4], links=[{"traceId": "0" * 32, "spanId": "01" * 8}]),
            raw_span(IDS[5], endTimeUnixNano=str(2**63)),  # past int64: nor this one
            raw_span(IDS[6], events=[{"timeUnixNano": str(2**64 - 1), "name": "late"}]),
            raw_span(IDS[7]),
            raw_span(IDS[8]),  # 4 bytes in protobuf
        ]
    )


def letters(batch: BridgedBatch) -> list[dict[str, Any]]:
    return [
        {"reason": letter.header(REASON_HEADER), "detail": letter.header(DETAIL_HEADER),
         "body": json.loads(letter.value)}
        for letter in batch.rejected
    ]  # fmt: skip


def test_a_bad_span_is_dead_lettered_alone_with_its_reason() -> None:
    data = mixed_payload()
    expected = json.loads(DEAD_LETTERS.read_text())
    for payload, source_format in ((otlp_proto_bytes(data), "otlp_proto"), (data, "otlp_json")):
        batch = bridged([payload])
        assert batch.spans == 3
        stored = republished(batch).spans()
        assert [s["span_id"] for s in stored] == [IDS[0], IDS[3], IDS[7]]
        repaired = stored[1]
        assert repaired["name"] == UNNAMED_SPAN
        assert repaired["end_time_unix_nano"] == repaired["start_time_unix_nano"]
        assert repaired["attributes"] == {CLAMPED_END_TIME: True}
        got = letters(batch)
        assert [letter["reason"] for letter in got] == list(BAD.values())
        for index, letter in zip(BAD, got, strict=True):
            assert letter["detail"].startswith(f"span {index} of the payload: ")
            assert letter["body"]["span_id"] == IDS[index]
            assert letter["body"]["source_format"] == source_format
        # Exactly the dead letters the dict path made before the columnar one (commit 737535c).
        assert got == expected[source_format]


def test_a_payload_that_does_not_decode_is_one_dead_letter_beside_good_payloads() -> None:
    good = otlp_proto_bytes(otlp_json([raw_span("00f067aa0ba902b7")]))
    bad_kind = otlp_proto_bytes(
        otlp_json([raw_span("00f067aa0ba902b8"), raw_span("00f067aa0ba902b9", kind=9)])
    )
    batch = bridged([good, b"\xff\xff\xff", bad_kind, good[:-3], good])
    assert batch.spans == 2
    assert [(letter.header(REASON_HEADER), letter.value) for letter in batch.rejected] == [
        ("otlp-proto-decode", b"\xff\xff\xff"),
        ("invalid-kind", bad_kind),
        ("otlp-proto-decode", good[:-3]),
    ]


def test_spans_of_several_payloads_are_split_by_partition() -> None:
    spans = web_shop_spans(40)
    payloads = [otlp_request(spans[:100]), otlp_request(spans[100:])]
    batch = bridged(payloads)
    columns = republished(batch)
    assert len(batch.messages) == len({p for p, _ in batch.messages})
    assert sorted(s["span_id"] for s in columns.spans()) == sorted(s["span_id"] for s in spans)
    in_payloads = [s for p in payloads for s in spans_from_payload(p, "otlp_proto")]
    order = {s["span_id"]: i for i, s in enumerate(in_payloads)}
    for _, value in batch.messages:
        positions = [order[s["span_id"]] for s in CODEC.decode(value).spans()]
        assert positions == sorted(positions)  # each message keeps the payloads' order
    assert np.all(columns.start_time_unix_nano > 0)


def test_span_dicts_of_a_payload_keep_spans_the_columns_cannot_hold_in_place() -> None:
    data = mixed_payload()
    for payload, source_format in ((otlp_proto_bytes(data), "otlp_proto"), (data, "otlp_json")):
        spans = spans_from_payload(payload, source_format)
        assert [s["span_id"] for s in spans] == IDS
        assert spans[1]["parent_span_id"] == "0" * 16
        assert spans[5]["end_time_unix_nano"] == 2**63


def test_a_protobuf_request_that_looks_like_json_after_its_first_byte_is_protobuf() -> None:
    # 0x0a (the tag of resource_spans) is a newline, and a length of 123 is '{'.
    for pad in range(200):
        data = otlp_proto_bytes(otlp_json([raw_span("00f067aa0ba902b7", name="x" * pad)]))
        if data[1:2] == b"{":
            break
    assert data.lstrip()[:1] == b"{"
    assert payload_format("otlp", data) == "otlp_proto"
    batch = bridged([data, b"\n" + otlp_json([raw_span("00f067aa0ba902b8")])])
    assert batch.rejected == []
    assert sorted(s["source_format"] for s in republished(batch).spans()) == [
        "otlp_json", "otlp_proto",
    ]  # fmt: skip
    assert detect_format(data) == "otlp_proto"


scalar_value = st.one_of(
    st.just({}),
    st.builds(lambda t: {"stringValue": t}, st.text(max_size=20)),
    st.builds(lambda i: {"intValue": str(i)}, st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda f: {"doubleValue": f}, st.floats(allow_nan=False, allow_infinity=False)),
    st.builds(lambda b: {"boolValue": b}, st.booleans()),
    st.builds(lambda b: {"bytesValue": base64.b64encode(b).decode()}, st.binary(max_size=20)),
)
any_value = st.recursive(
    scalar_value,
    lambda inner: st.one_of(
        st.builds(lambda v: {"arrayValue": {"values": v}}, st.lists(inner, max_size=3)),
        st.builds(
            lambda v: {"kvlistValue": {"values": v}},
            st.lists(st.fixed_dictionaries({"key": st.text(max_size=3), "value": inner}),
                     max_size=3),
        ),
    ),
    max_leaves=6,
)  # fmt: skip
attributes = st.lists(
    st.fixed_dictionaries(
        {"key": st.sampled_from(["a", "b", "c", "d", "service.name", ""]), "value": any_value}
    ),
    max_size=5,
)


def span_id(size: int) -> st.SearchStrategy[str]:
    """Hex ids, mostly of the right width, some all zeros, some of another width."""
    return st.one_of(
        st.binary(min_size=size, max_size=size), st.just(bytes(size)), st.binary(max_size=size + 2)
    ).map(bytes.hex)


unix_nano = st.one_of(st.integers(1, 2**62), st.sampled_from([0, 2**63 - 1, 2**63, 2**64 - 1]))
random_span = st.fixed_dictionaries(
    {
        "traceId": span_id(16),
        "spanId": span_id(8),
        "parentSpanId": st.just("") | span_id(8),
        "name": st.text(max_size=3),
        "kind": st.integers(0, 5) | st.integers(0, 7),
        "startTimeUnixNano": unix_nano.map(str),
        "endTimeUnixNano": unix_nano.map(str),
        "attributes": attributes,
        "events": st.lists(
            st.fixed_dictionaries({"timeUnixNano": unix_nano.map(str), "name": st.text(max_size=2),
                                   "attributes": attributes}),
            max_size=2,
        ),
        "links": st.lists(
            st.fixed_dictionaries({"traceId": span_id(16), "spanId": span_id(8),
                                   "attributes": attributes}),
            max_size=2,
        ),
        "status": st.fixed_dictionaries(
            {"code": st.integers(0, 2) | st.integers(0, 3), "message": st.text(max_size=2)}
        ),
    }
)  # fmt: skip
random_request = st.lists(
    st.fixed_dictionaries(
        {
            "resource": st.fixed_dictionaries({"attributes": attributes}),
            "scopeSpans": st.lists(
                st.fixed_dictionaries(
                    {"scope": st.fixed_dictionaries({"name": st.text(max_size=2)}),
                     "spans": st.lists(random_span, max_size=4)}
                ),
                max_size=2,
            ),
        }
    ),
    max_size=2,
).map(lambda resource_spans: json.dumps({"resourceSpans": resource_spans}).encode())  # fmt: skip


def outcome(batch: BridgedBatch, payloads: list[bytes]) -> tuple[list[str], list[Any]]:
    """Stored spans and dead letters, the source format left out."""

    def plain(span: Any) -> str:
        return json.dumps({**span, "source_format": ""}, sort_keys=True, default=bytes.hex)

    stored = sorted(plain(s) for s in republished(batch).spans())
    dead = [
        (letter.header(REASON_HEADER), letter.header(DETAIL_HEADER),
         None if letter.value in payloads else plain(json.loads(letter.value)))
        for letter in batch.rejected
    ]  # fmt: skip
    return stored, dead


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(random_request, min_size=1, max_size=3))
def test_protobuf_and_json_of_random_requests_store_and_reject_the_same(
    requests: list[bytes],
) -> None:
    as_proto = [otlp_proto_bytes(request) for request in requests]
    assert outcome(bridged(as_proto), as_proto) == outcome(bridged(requests), requests)
