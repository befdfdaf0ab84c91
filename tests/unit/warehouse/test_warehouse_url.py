"""Warehouse URLs: chdb:// paths (absolute with three slashes, relative with two), clickhouse://."""

from __future__ import annotations

import pytest

from streams.config import ClickHouseConfig
from streams.errors import ConfigError
from streams.warehouse import (
    DEFAULT_CHDB_URL,
    SPAN_KIND_VALUES,
    STATUS_CODE_VALUES,
    WarehouseURL,
    open_warehouse,
    parse_url,
    redact_url,
)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("chdb:///var/lib/tracepipe/chdb", "/var/lib/tracepipe/chdb"),
        ("chdb://.tracepipe/chdb", ".tracepipe/chdb"),
        ("chdb://data", "data"),
        ("chdb://./rel/path", "./rel/path"),
        ("chdb:///tmp/with%20space", "/tmp/with space"),
    ],
)
def test_chdb_paths(url: str, path: str) -> None:
    assert parse_url(url) == WarehouseURL(scheme="chdb", path=path)


def test_default_chdb_url_is_relative() -> None:
    assert parse_url(DEFAULT_CHDB_URL).path == "$TRACEPIPE_HOME/chdb"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("clickhouse://localhost", WarehouseURL("clickhouse", host="localhost")),
        (
            "clickhouse://ch.example:19000/traces",
            WarehouseURL("clickhouse", host="ch.example", port=19000, database="traces"),
        ),
        (
            "clickhouse://bob:s%40cret@10.0.0.5:9440/db",
            WarehouseURL(
                "clickhouse",
                host="10.0.0.5",
                port=9440,
                database="db",
                user="bob",
                password="s@cret",
            ),
        ),
        ("clickhouse://alice@h/", WarehouseURL("clickhouse", host="h", user="alice")),
    ],
)
def test_native_urls(url: str, expected: WarehouseURL) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://localhost:8123", "should start with chdb://"),
        ("chdb://", "no data path"),
        ("chdb:///", "no data path"),
        ("clickhouse://:9000/db", "no host"),
        ("clickhouse://h:notaport/db", "bad port"),
        ("clickhouse://h/a/b", "one database name"),
    ],
)
def test_bad_urls_name_the_fix(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match="TRACEPIPE_CLICKHOUSE_URL") as info:
        parse_url(url)
    assert fragment in str(info.value)


def test_password_is_redacted() -> None:
    assert redact_url("clickhouse://bob:s3cret@h:9000/db") == "clickhouse://bob:***@h:9000/db"
    assert redact_url("chdb:///x") == "chdb:///x"
    assert "s3cret" not in repr(parse_url("clickhouse://bob:s3cret@h/db"))


def test_native_backend_is_chosen_without_connecting() -> None:
    # clickhouse-driver connects lazily, so opening needs no server.
    warehouse = open_warehouse(ClickHouseConfig(url="clickhouse://127.0.0.1:1/db"))
    try:
        assert type(warehouse).__name__ == "NativeWarehouse"
        assert warehouse.url == "clickhouse://127.0.0.1:1/db"
    finally:
        warehouse.close()


def test_exporter_strings_cover_every_otel_value() -> None:
    assert set(SPAN_KIND_VALUES) >= {"INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"}
    assert SPAN_KIND_VALUES["SERVER"] == "Server"
    assert dict(STATUS_CODE_VALUES) == {"UNSET": "Unset", "OK": "Ok", "ERROR": "Error"}
