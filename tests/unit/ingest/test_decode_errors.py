"""Malformed payloads: a DecodeError with a specific reason, never any other exception."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.config import IngestConfig
from streams.errors import DecodeError
from streams.ingest import (
    SOURCE_FORMATS,
    detect_format,
    spans_from_otlp_json,
    spans_from_otlp_proto,
    spans_from_payload,
    spans_from_zipkin_json,
    validate_span,
)

TID = "5b8efff798038103d269b633813fc60c"
SID = "eee19b7ec3c1b174"


def otlp(span: dict[str, Any], attrs: list[Any] | None = None) -> bytes:
    base = {"traceId": TID, "spanId": SID, "name": "x", "startTimeUnixNano": "1"}
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": attrs or []},
                    "scopeSpans": [{"spans": [{**base, **span}]}],
                }
            ]
        }
    ).encode()


def zipkin(**fields: Any) -> bytes:
    base = {"traceId": TID, "id": SID, "name": "x", "timestamp": 1, "duration": 1}
    return json.dumps([{**base, **fields}]).encode()


BAD = [
    (spans_from_otlp_proto, b"\xff\xff\xff", "otlp-proto-decode"),
    (spans_from_otlp_json, b"{not json", "otlp-json-decode"),
    (spans_from_otlp_json, b"\xff\xfe", "otlp-json-decode"),
    (spans_from_otlp_json, b"[]", "otlp-json-shape"),
    (spans_from_otlp_json, b'{"resourceSpans": {}}', "otlp-json-shape"),
    (spans_from_otlp_json, otlp({"startTimeUnixNano": "soon"}), "otlp-json-shape"),
    (spans_from_otlp_json, otlp({"traceId": 7}), "otlp-json-shape"),
    (spans_from_otlp_json, otlp({"kind": 9}), "invalid-kind"),
    (spans_from_otlp_json, otlp({"status": {"code": 7}}), "invalid-status"),
    (
        spans_from_otlp_json,
        otlp({}, [{"key": "k", "value": {"intValue": str(2**63)}}]),
        "otlp-json-shape",
    ),
    (
        spans_from_otlp_json,
        otlp({}, [{"key": "k", "value": {"bytesValue": "!!"}}]),
        "otlp-json-shape",
    ),
    (spans_from_otlp_json, otlp({}, [{"key": "k", "value": {"fooValue": 1}}]), "otlp-json-shape"),
    (
        spans_from_otlp_json,
        otlp({}, [{"key": "k", "value": {"stringValue": "a", "intValue": 1}}]),
        "otlp-json-shape",
    ),
    (spans_from_zipkin_json, b"nope", "zipkin-json-decode"),
    (spans_from_zipkin_json, b'{"traceId": "ab"}', "zipkin-json-shape"),
    (spans_from_zipkin_json, zipkin(timestamp="now"), "zipkin-json-shape"),
    (spans_from_zipkin_json, zipkin(tags={"n": 1}), "zipkin-json-shape"),
    (spans_from_zipkin_json, zipkin(kind="SIDEWAYS"), "invalid-kind"),
    (spans_from_zipkin_json, zipkin(remoteEndpoint={"port": 70000}), "zipkin-json-shape"),
]


@pytest.mark.parametrize(("convert", "data", "reason"), BAD)
def test_malformed_payload_gives_its_reason(convert: Any, data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        convert(data)
    assert info.value.reason == reason
    assert info.value.detail


def test_shape_errors_say_where() -> None:
    with pytest.raises(DecodeError) as info:
        spans_from_otlp_json(otlp({"endTimeUnixNano": "later"}))
    assert "resourceSpans[0].scopeSpans[0].spans[0].endTimeUnixNano" in info.value.detail


def test_otlp_json_accepts_base64_ids_and_snake_case_keys() -> None:
    data = json.dumps(
        {
            "resource_spans": [
                {
                    "scope_spans": [
                        {
                            "spans": [
                                {
                                    "trace_id": "W47/95gDgQPSabYzgT/GDA==",
                                    "span_id": "7uGbfsPBsXQ=",
                                    "name": "x",
                                    "start_time_unix_nano": "5",
                                    "kind": "SPAN_KIND_CLIENT",
                                }
                            ]
                        }
                    ]
                }
            ]
        }
    ).encode()
    (span,) = spans_from_otlp_json(data)
    assert (span["trace_id"], span["span_id"], span["kind"]) == (TID, SID, "CLIENT")
    assert span["service_name"] == "unknown_service"


def test_zipkin_error_tag_sets_status_and_is_consumed() -> None:
    (span,) = spans_from_zipkin_json(zipkin(tags={"error": "boom", "x": "1"}))
    assert (span["status_code"], span["status_message"]) == ("ERROR", "boom")
    assert span["attributes"] == {"x": "1"}


def test_unknown_format() -> None:
    with pytest.raises(DecodeError) as info:
        spans_from_payload(b"{}", "jaeger_thrift")
    assert info.value.reason == "unknown-format"


def test_tracepipe_json_shape_errors() -> None:
    with pytest.raises(DecodeError) as info:
        spans_from_payload(b'{"traceId": "x"}', "tracepipe_json")
    assert info.value.reason == "tracepipe-json-shape"
    assert "snake_case" in info.value.detail
    with pytest.raises(DecodeError) as info:
        spans_from_payload(b'{"trace_id": "x"}', "tracepipe_json")
    assert "missing required" in info.value.detail


def test_detect_format() -> None:
    assert detect_format(b"\x0a\x02") == "otlp_proto"
    assert detect_format(b'  {"resourceSpans": []}') == "otlp_json"
    assert detect_format(b'[{"traceId": "ab", "id": "cd"}]') == "zipkin_json"
    assert detect_format(b'{"trace_id": "ab"}') == "tracepipe_json"
    for bad in (b"{oops", b'{"spans": []}', b"[1, 2]"):
        with pytest.raises(DecodeError) as info:
            detect_format(bad)
        assert info.value.reason == "unknown-format"


def convert_and_validate(data: bytes, source_format: str) -> None:
    """Conversion and then validation of every span raise nothing but DecodeError."""
    try:
        spans = spans_from_payload(data, source_format)
    except DecodeError:
        return
    for span in spans:
        with contextlib.suppress(DecodeError):
            validate_span(span, IngestConfig(max_attributes=2, max_attribute_value_bytes=8))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "resourceSpans",
                    "scopeSpans",
                    "spans",
                    "traceId",
                    "spanId",
                    "id",
                    "attributes",
                    "key",
                    "value",
                    "stringValue",
                    "intValue",
                    "kvlistValue",
                    "arrayValue",
                    "values",
                    "events",
                    "links",
                    "timestamp",
                    "tags",
                    "localEndpoint",
                    "remoteEndpoint",
                    "annotations",
                    "status",
                    "code",
                    "trace_id",
                    "span_id",
                    "name",
                    "start_time_unix_nano",
                    "kind",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300), source_format=st.sampled_from(SOURCE_FORMATS))
def test_random_bytes_raise_only_decode_error(data: bytes, source_format: str) -> None:
    convert_and_validate(data, source_format)
    with contextlib.suppress(DecodeError):
        detect_format(data)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(doc=json_values, source_format=st.sampled_from(SOURCE_FORMATS))
def test_random_json_raises_only_decode_error(doc: Any, source_format: str) -> None:
    data = json.dumps(doc).encode()
    convert_and_validate(data, source_format)
    with contextlib.suppress(DecodeError):
        detect_format(data)


def test_deeply_nested_json_is_a_decode_error() -> None:
    data = b"[" * 100_000 + b"]" * 100_000
    for source_format in SOURCE_FORMATS:
        with pytest.raises(DecodeError):
            spans_from_payload(data, source_format)


any_value = st.recursive(
    st.fixed_dictionaries(
        {},
        optional={
            "stringValue": st.text(max_size=8) | st.integers(),
            "intValue": st.integers() | st.text(max_size=4),
            "doubleValue": st.floats() | st.sampled_from(["NaN", "x"]),
            "boolValue": st.booleans() | st.none(),
            "bytesValue": st.sampled_from(["AQI=", "", "%%"]),
        },
    ),
    lambda inner: (
        st.fixed_dictionaries(
            {"arrayValue": st.fixed_dictionaries({"values": st.lists(inner, max_size=3)})}
        )
        | st.fixed_dictionaries(
            {
                "kvlistValue": st.fixed_dictionaries(
                    {
                        "values": st.lists(
                            st.fixed_dictionaries({"key": st.text(max_size=3), "value": inner}),
                            max_size=3,
                        )
                    }
                )
            }
        )
    ),
    max_leaves=10,
)
hexish = st.text(alphabet="0123456789abcdefABCDEF=+/xz", max_size=34)
otlp_span = st.fixed_dictionaries(
    {},
    optional={
        "traceId": hexish | json_values,
        "spanId": hexish,
        "parentSpanId": hexish,
        "name": st.text(max_size=4) | json_values,
        "kind": st.integers(-1, 7),
        "startTimeUnixNano": st.integers(-1, 2**65) | st.text(max_size=4),
        "endTimeUnixNano": st.integers(-1, 2**64),
        "attributes": st.lists(
            st.fixed_dictionaries({"key": st.text(max_size=3), "value": any_value}), max_size=4
        ),
        "events": st.lists(
            st.fixed_dictionaries(
                {}, optional={"timeUnixNano": st.integers(-1, 2**64), "name": st.text(max_size=3)}
            ),
            max_size=2,
        ),
        "links": st.lists(
            st.fixed_dictionaries({}, optional={"traceId": hexish, "spanId": hexish}), max_size=2
        ),
        "status": st.fixed_dictionaries(
            {}, optional={"code": st.integers(-1, 3), "message": st.text(max_size=3)}
        ),
    },
)
zipkin_span = st.fixed_dictionaries(
    {},
    optional={
        "traceId": hexish,
        "id": hexish,
        "parentId": hexish,
        "name": st.text(max_size=4),
        "kind": st.sampled_from(["SERVER", "CLIENT", "PRODUCER", "CONSUMER", "X"]),
        "timestamp": st.integers(-1, 2**62) | st.floats(),
        "duration": st.integers(-1, 2**40),
        "shared": st.booleans(),
        "debug": st.booleans(),
        "localEndpoint": st.fixed_dictionaries(
            {},
            optional={
                "serviceName": st.text(max_size=3),
                "ipv4": st.text(max_size=3),
                "port": st.integers(-1, 70000),
            },
        ),
        "remoteEndpoint": st.fixed_dictionaries(
            {},
            optional={
                "serviceName": st.text(max_size=3),
                "ipv6": st.text(max_size=3) | st.integers(),
                "port": st.integers(-1, 70000),
            },
        ),
        "tags": st.dictionaries(
            st.sampled_from(["error", "otel.status_code", "a"]),
            st.text(max_size=5) | st.sampled_from(["OK", "ERROR"]),
        ),
        "annotations": st.lists(
            st.fixed_dictionaries(
                {}, optional={"timestamp": st.integers(-1, 2**62), "value": st.text(max_size=3)}
            ),
            max_size=2,
        ),
    },
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(spans=st.lists(otlp_span, max_size=3))
def test_random_otlp_spans_raise_only_decode_error(spans: list[Any]) -> None:
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
    convert_and_validate(json.dumps(doc).encode(), "otlp_json")


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(spans=st.lists(zipkin_span, max_size=3))
def test_random_zipkin_spans_raise_only_decode_error(spans: list[Any]) -> None:
    convert_and_validate(json.dumps(spans).encode(), "zipkin_json")
