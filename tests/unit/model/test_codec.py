"""The span codec round-trips spans, resolves old writer schemas and rejects bad bytes."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.errors import DecodeError
from streams.model.codec import AvroCodec, schema_fingerprint
from streams.model.span import make_span
from streams.paths import schemas_root

CODEC = AvroCodec("span")


def sample_span() -> dict[str, object]:
    return dict(
        make_span(
            "0af7651916cd43dd8448eb211c80319c",
            "b7ad6b7169203331",
            "GET /cart",
            "cart",
            1_700_000_000_000_000_000,
            1_700_000_000_250_000_000,
            kind="SERVER",
            status_code="ERROR",
            status_message="boom",
            attributes={
                "http.status_code": 500,
                "retry": True,
                "ratio": 0.5,
                "tags": ["a", "b"],
                "raw": b"\x00\x01",
                "none": None,
            },
            events=[
                {
                    "time_unix_nano": 1_700_000_000_100_000_000,
                    "name": "exception",
                    "attributes": {"exception.type": "ValueError"},
                }
            ],
            links=[
                {"trace_id": "1" * 32, "span_id": "2" * 16, "trace_state": "", "attributes": {}}
            ],
        )
    )


def test_round_trip_keeps_types() -> None:
    span = sample_span()
    decoded = CODEC.decode(CODEC.encode(span), CODEC.fingerprint)
    assert decoded == span
    assert decoded["attributes"]["retry"] is True
    assert isinstance(decoded["attributes"]["ratio"], float)


def test_batch_encoding_matches_single() -> None:
    spans = [sample_span(), dict(sample_span(), span_id="c" * 16)]
    assert CODEC.encode_batch(spans) == [CODEC.encode(s) for s in spans]


def test_confluent_wire_format_is_accepted() -> None:
    body = CODEC.encode(sample_span())
    assert CODEC.decode(b"\x00\x00\x00\x00\x07" + body) == sample_span()


def test_old_writer_schema_is_resolved(tmp_path: Path) -> None:
    # A writer schema without source_format (an older release) still decodes, with the default.
    current = json.loads((schemas_root() / "avro" / "span.avsc").read_text())
    old = dict(current, fields=[f for f in current["fields"] if f["name"] != "source_format"])
    (tmp_path / "history").mkdir()
    (tmp_path / "span.avsc").write_text(json.dumps(current))
    (tmp_path / "history" / "span.v0.avsc").write_text(json.dumps(old))
    codec = AvroCodec("span", tmp_path)
    old_codec_schema = codec._writers[next(fp for fp in codec._writers if fp != codec.fingerprint)]
    import io

    import fastavro

    span = sample_span()
    del span["source_format"]
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, old_codec_schema, span)
    decoded = codec.decode(buf.getvalue(), schema_fingerprint(old_codec_schema))
    assert decoded["source_format"] == "tracepipe"


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"", "empty"), (b"\x40abc", "avro-decode")],
)
def test_bad_bytes_have_reasons(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        CODEC.decode(data)
    assert info.value.reason == reason


def test_trailing_bytes_are_rejected() -> None:
    with pytest.raises(DecodeError) as info:
        CODEC.decode(CODEC.encode(sample_span()) + b"\x00")
    assert info.value.reason == "avro-trailing-bytes"


def test_unknown_fingerprint_is_rejected() -> None:
    with pytest.raises(DecodeError) as info:
        CODEC.decode(CODEC.encode(sample_span()), "ffffffffffffffff")
    assert info.value.reason == "unknown-schema"


@given(st.binary(max_size=300))
def test_random_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        CODEC.decode(data)


def test_decode_many_keeps_order_and_errors() -> None:
    good = CODEC.encode(sample_span())
    out = CODEC.decode_many([good, b"", good], [None, None, None])
    assert isinstance(out[1], DecodeError)
    assert out[0] == out[2] == sample_span()
