"""What every command shares: typed trace ids, unknown services, the settings in force."""

from __future__ import annotations

from typing import Any

import pytest

from streams.broker.probe import free_port
from streams.config import Settings
from streams.errors import InputError
from streams.query import parse_trace_id, settings_in_force, unknown_service


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("4BF92F3577B34DA6A3CE929D0E0E4736", "4bf92f3577b34da6a3ce929d0e0e4736"),
        (" 0123456789abcdef\n", "00000000000000000123456789abcdef"),
    ],
)
def test_parse_trace_id_takes_128_and_64_bit_ids(text: str, stored: str) -> None:
    assert parse_trace_id(text) == stored


@pytest.mark.parametrize("text", ["", "abc", "0" * 32, "0" * 16, "g" * 32, "1" * 20, "1" * 33])
def test_parse_trace_id_says_what_an_id_is(text: str) -> None:
    with pytest.raises(InputError, match=r"is not a trace id: give 32 hex digits, or 16"):
        parse_trace_id(text)


class Services:
    """A Reader that knows some services."""

    def __init__(self, *names: str) -> None:
        self.names = names

    def query_dicts(self, sql: str) -> list[dict[str, Any]]:
        return [{"service": name} for name in self.names]


def test_unknown_service_lists_the_known_ones() -> None:
    assert unknown_service(Services("cart", "payment"), "cart") is None
    assert unknown_service(Services("cart", "payment"), "Cart") == (
        "unknown service 'Cart'; known services: cart, payment"
    )
    many = Services(*(f"s{i:02d}" for i in range(25)))
    assert str(unknown_service(many, "x")).endswith("s18, s19 and 5 more")
    assert unknown_service(Services(), "x") == (
        "unknown service 'x': no spans or windows are stored yet"
    )


def test_settings_in_force_without_a_worker_are_the_command_s() -> None:
    settings = Settings().replace("worker", web_port=free_port())
    in_force, source = settings_in_force(settings)
    assert in_force is settings
    assert source.startswith("this command's settings; no worker answers at http://")
