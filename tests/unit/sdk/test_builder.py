"""The span builder: ids, parenting, exception recording and W3C traceparent round trips."""

from __future__ import annotations

import re

import pytest

from streams.model.codec import AvroCodec
from streams.model.span import Span
from streams.sdk import (
    SpanContext,
    Tracer,
    extract,
    format_traceparent,
    inject,
    new_span_id,
    new_trace_id,
    parse_traceparent,
)


class Capture:
    """A sender that keeps what it is given."""

    def __init__(self) -> None:
        self.spans: list[Span] = []

    def send(self, span: Span) -> None:
        self.spans.append(span)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000_000_000

    def __call__(self) -> int:
        self.now += 1_000
        return self.now


def make_tracer(service: str = "checkout") -> tuple[Tracer, Capture]:
    sink = Capture()
    return Tracer(
        service, sink, resource_attributes={"host.name": "h1"}, scope_version="9", clock=Clock()
    ), sink


def test_ids_are_lowercase_hex_of_the_right_length() -> None:
    assert re.fullmatch(r"[0-9a-f]{32}", new_trace_id())
    assert re.fullmatch(r"[0-9a-f]{16}", new_span_id())
    assert len({new_span_id() for _ in range(1000)}) == 1000


def test_children_share_the_trace_and_point_at_their_parent() -> None:
    tracer, sink = make_tracer()
    with tracer.start_span("GET /", kind="server") as root:
        with tracer.start_span("db", kind="CLIENT", parent=root, attributes={"n": 1}) as child:
            child.set_attribute("rows", 3).set_attributes({"ok": True, "ratio": 0.5})
        remote = tracer.start_span("async", parent=SpanContext(root.context.trace_id, "f" * 16))
        remote.end()
    db, async_span, get = sink.spans
    assert get["parent_span_id"] == "" and get["kind"] == "SERVER"
    assert db["trace_id"] == get["trace_id"] == async_span["trace_id"]
    assert db["parent_span_id"] == get["span_id"]
    assert async_span["parent_span_id"] == "f" * 16
    assert db["attributes"] == {"n": 1, "rows": 3, "ok": True, "ratio": 0.5}
    assert get["start_time_unix_nano"] < db["start_time_unix_nano"]
    assert db["end_time_unix_nano"] < get["end_time_unix_nano"]
    assert get["service_name"] == "checkout"
    assert get["resource_attributes"] == {"host.name": "h1", "service.name": "checkout"}
    assert (get["scope_name"], get["scope_version"]) == ("tracepipe.sdk", "9")
    codec = AvroCodec("span")
    for span in sink.spans:  # every built span is a valid canonical span
        assert codec.decode(codec.encode(span), codec.fingerprint) == span


def test_an_exception_becomes_an_event_and_error_status_and_still_propagates() -> None:
    tracer, sink = make_tracer()
    with pytest.raises(KeyError), tracer.start_span("lookup"):
        raise KeyError("cart-7")
    (span,) = sink.spans
    assert span["status_code"] == "ERROR"
    assert span["status_message"] == "KeyError: 'cart-7'"
    (event,) = span["events"]
    assert event["name"] == "exception"
    assert event["attributes"]["exception.type"] == "KeyError"
    assert event["attributes"]["exception.message"] == "'cart-7'"
    assert "raise KeyError" in str(event["attributes"]["exception.stacktrace"])


def test_events_links_status_and_single_end() -> None:
    tracer, sink = make_tracer()
    span = tracer.start_span("work")
    span.add_event("retry", {"attempt": 2}, time_unix_nano=42)
    span.add_link(SpanContext("1" * 32, "2" * 16, "k=v"), {"reason": "batch"})
    span.set_status("ok", "ignored for OK")
    span.set_status("ERROR", "too late: OK is final")
    first = span.end(end_time_unix_nano=99)
    assert span.end() is first and len(sink.spans) == 1
    assert first["events"] == [
        {"time_unix_nano": 42, "name": "retry", "attributes": {"attempt": 2}}
    ]
    assert first["links"] == [
        {
            "trace_id": "1" * 32,
            "span_id": "2" * 16,
            "trace_state": "k=v",
            "attributes": {"reason": "batch"},
        }
    ]
    assert (first["status_code"], first["status_message"]) == ("OK", "")
    assert first["end_time_unix_nano"] == 99


def test_bad_kind_and_status_are_refused() -> None:
    tracer, _ = make_tracer()
    with pytest.raises(ValueError, match="span kind"):
        tracer.start_span("x", kind="SIDEWAYS")
    with pytest.raises(ValueError, match="status code"):
        tracer.start_span("x").set_status("FINE")


def test_traceparent_round_trip_across_a_hop() -> None:
    frontend, sink = make_tracer("frontend")
    backend = Tracer("backend", sink)
    with frontend.start_span("call backend", kind="CLIENT") as client:
        headers = inject(SpanContext(client.context.trace_id, client.context.span_id, "v=1"), {})
        assert headers["traceparent"] == f"00-{client.context.trace_id}-{client.context.span_id}-01"
        incoming = {"Traceparent": headers["traceparent"], "TraceState": headers["tracestate"]}
        with backend.start_span("GET /price", kind="SERVER", parent=extract(incoming)):
            pass
    server, client_span = sink.spans
    assert server["trace_id"] == client_span["trace_id"]
    assert server["parent_span_id"] == client_span["span_id"]
    assert server["trace_state"] == "v=1"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "00-" + "0" * 32 + "-" + "1" * 16 + "-01",
        "00-" + "1" * 32 + "-" + "0" * 16 + "-01",
        "ff-" + "1" * 32 + "-" + "1" * 16 + "-01",
        "00-" + "1" * 32 + "-" + "1" * 16 + "-01-extra",
        "00-" + "1" * 31 + "-" + "1" * 16 + "-01",
    ],
)
def test_invalid_traceparent_is_ignored(header: str | None) -> None:
    assert parse_traceparent(header) is None


def test_traceparent_flags_and_future_versions() -> None:
    context = SpanContext("a" * 32, "b" * 16, sampled=False)
    assert format_traceparent(context) == f"00-{'a' * 32}-{'b' * 16}-00"
    assert parse_traceparent(format_traceparent(context)) == context
    future = parse_traceparent(f"01-{'a' * 32}-{'b' * 16}-01-more")
    assert future == SpanContext("a" * 32, "b" * 16, "", True)
