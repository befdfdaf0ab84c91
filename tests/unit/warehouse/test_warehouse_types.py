"""ClickHouse type strings parse into trees; values convert by type in both directions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from streams.warehouse import (
    ChType,
    chdb_backend,
    native_backend,
    parse_type,
    quote_identifier,
    quote_string,
    split_table_name,
)

S = ChType("String")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("String", S),
        ("DateTime64(9)", ChType("DateTime64", params=("9",))),
        ("DateTime64(3, 'UTC')", ChType("DateTime64", params=("3", "'UTC'"))),
        ("Array(DateTime64(9))", ChType("Array", (ChType("DateTime64", params=("9",)),))),
        (
            "Map(LowCardinality(String), String)",
            ChType("Map", (ChType("LowCardinality", (S,)), S)),
        ),
        ("Nullable(UInt64)", ChType("Nullable", (ChType("UInt64"),))),
        ("Tuple(a UInt8, b String)", ChType("Tuple", (ChType("UInt8"), S), names=("a", "b"))),
        ("Tuple(UInt8, String)", ChType("Tuple", (ChType("UInt8"), S))),
        ("Enum8('a, b' = 1, 'c' = 2)", ChType("Enum8", params=("'a, b' = 1", "'c' = 2"))),
    ],
)
def test_parse_type(text: str, expected: ChType) -> None:
    assert parse_type(text) == expected


def test_base_strips_wrappers() -> None:
    assert parse_type("LowCardinality(Nullable(String))").base == S


def test_names_and_literals_are_quoted() -> None:
    assert quote_identifier("Events.Timestamp") == "`Events.Timestamp`"
    assert quote_string("it's") == "'it\\'s'"
    assert split_table_name("db.t") == ("db", "t")
    assert split_table_name("`otel_traces`") == (None, "otel_traces")


def test_chdb_json_values_decode_by_type() -> None:
    def decode(type_text: str, value: object) -> object:
        fn = chdb_backend._json_decoder(parse_type(type_text))
        return value if fn is None else fn(value)

    assert decode("DateTime64(9)", "1700000000.123456789") == 1_700_000_000_123_456_789
    assert decode("DateTime64(3)", "1700000000.5") == 1_700_000_000_500_000_000
    assert decode("DateTime64(9)", "-1.5") == -1_500_000_000
    assert decode("DateTime", 1700000000) == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert decode("Date", "2024-02-29") == date(2024, 2, 29)
    assert decode("Array(DateTime64(9))", ["1.000000001"]) == [1_000_000_001]
    assert decode("Map(String, DateTime64(9))", {"a": "2.0"}) == {"a": 2_000_000_000}
    assert decode("Map(LowCardinality(String), String)", {"k": "v"}) == {"k": "v"}
    assert decode("Nullable(DateTime64(9))", None) is None
    assert decode("UInt64", "18446744073709551615") == 2**64 - 1
    assert decode("Decimal(18, 3)", "1.500") == Decimal("1.500")
    assert decode("Tuple(UInt8, String)", [1, "a"]) == (1, "a")
    assert decode("Float64", "nan") != decode("Float64", "nan")  # nan arrives quoted


def test_native_values_decode_by_type() -> None:
    berlin = timezone(timedelta(hours=1))

    def decode(type_text: str, value: object) -> object:
        fn = native_backend._decoder(parse_type(type_text), berlin)
        return value if fn is None else fn(value)

    # clickhouse-driver hands back naive datetimes in the server's zone (UTC+1 here).
    naive = datetime(2024, 1, 1, 1, 0, 0, 123456)  # noqa: DTZ001
    assert decode("DateTime64(9)", naive) == 1_704_067_200_123_456_000
    assert decode("DateTime", naive.replace(microsecond=0)) == datetime(2024, 1, 1, tzinfo=UTC)
    assert decode("Array(Nullable(DateTime64(6)))", [naive, None]) == [
        1_704_067_200_123_456_000,
        None,
    ]


def test_native_encoder_turns_nanos_into_ticks() -> None:
    enc9 = native_backend._encoder(parse_type("DateTime64(9)"))
    enc3 = native_backend._encoder(parse_type("DateTime64(3, 'UTC')"))
    arr = native_backend._encoder(parse_type("Array(DateTime64(6))"))
    assert enc9 is not None and enc3 is not None and arr is not None
    assert enc9(1_700_000_000_123_456_789) == 1_700_000_000_123_456_789
    assert enc3(1_700_000_000_123_456_789) == 1_700_000_000_123
    assert arr([1_000_000_000]) == [1_000_000]
    assert native_backend._encoder(parse_type("Map(String, String)")) is None


def test_arrow_arrays_carry_the_column_types() -> None:
    pa = pytest.importorskip("pyarrow")
    ts = chdb_backend.arrow_array(parse_type("DateTime64(9)"), [1_700_000_000_123_456_789])
    assert ts.type == pa.timestamp("ns", tz="UTC")
    assert ts.cast(pa.int64()).to_pylist() == [1_700_000_000_123_456_789]
    maps = chdb_backend.arrow_array(
        parse_type("Array(Map(LowCardinality(String), String))"), [[{"a": "1"}, {}], []]
    )
    assert maps.to_pylist() == [[[("a", "1")], []], []]
    dt = chdb_backend.arrow_array(
        parse_type("DateTime"), [1, datetime(1970, 1, 1, 0, 0, 2, tzinfo=UTC)]
    )
    assert dt.cast(pa.int64()).to_pylist() == [1, 2]
    with pytest.raises(ValueError, match="naive"):
        chdb_backend.arrow_array(parse_type("DateTime"), [datetime(2024, 1, 1)])  # noqa: DTZ001
