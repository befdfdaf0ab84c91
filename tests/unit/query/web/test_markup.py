"""The shared HTML pieces: escaping, URLs, service colours, tables and the page shell."""

from __future__ import annotations

from streams.query.web.markup import (
    SERVICE_PALETTE,
    clock,
    document,
    service_colours,
    table,
    text,
    trace_url,
    ui_url,
)
from tests.unit.query.web.dom import select


def test_text_escapes_markup_and_quotes() -> None:
    assert text('<a href="x">\'&') == "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;"
    assert text(12.5) == "12.5"


def test_urls_drop_empty_parameters_and_encode_the_rest() -> None:
    assert ui_url() == "/ui/"
    assert ui_url("", {"service": "a b&c", "operation": ""}) == "/ui/?service=a+b%26c"
    assert ui_url("graph", {"since": "1h"}) == "/ui/graph?since=1h"
    assert trace_url("ab/../x?") == "/ui/trace/ab%2F..%2Fx%3F"


def test_service_colours_are_distinct_stable_and_independent_of_order() -> None:
    services = [f"svc{i}" for i in range(len(SERVICE_PALETTE))]
    colours = service_colours(services)
    assert sorted(colours.values()) == sorted(SERVICE_PALETTE)
    assert service_colours(reversed(services)) == colours
    assert service_colours(services + services) == colours
    # More services than colours: every one still gets a colour of the palette.
    many = service_colours(f"s{i}" for i in range(3 * len(SERVICE_PALETTE)))
    assert len(many) == 3 * len(SERVICE_PALETTE) and set(many.values()) <= set(SERVICE_PALETTE)


def test_table_classes_and_escaped_headers() -> None:
    html = table(("a<", "n"), [("x", "1"), ("y", "2")], numeric=(1,), cells={(1, 1): "bad"})
    assert [th.text for th in select(html, "th")] == ["a<", "n"]
    assert [td.attrs.get("class", "") for td in select(html, "td")] == ["", "num", "", "num bad"]


def test_document_marks_the_active_page() -> None:
    page = document("T <1>", "services", "<p>body</p>")
    (title,) = select(page, "title")
    assert title.text == "T <1> · tracepipe"
    assert [a.text for a in select(page, "a", "active")] == ["Services"]


def test_clock_has_milliseconds_in_utc() -> None:
    assert clock(1_700_000_000_123_456_789) == "2023-11-14 22:13:20.123Z"
    assert clock(1_700_000_000_999_999_999) == "2023-11-14 22:13:20.999Z"  # not rounded up
    assert clock(0) == "1970-01-01 00:00:00.000Z"
