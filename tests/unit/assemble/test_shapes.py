"""Whole before idle: learned trace shapes (TraceShapes) and the buffer's early emission, on a
driven clock. A trace is emitted at the first sweep after it is whole, never before a parent or
a usually-reported server half arrives, and idle stays the fallback."""

from __future__ import annotations

import json
from typing import Any

from streams.assemble.buffer import TraceBuffer
from streams.assemble.shapes import MIN_TRACES, PAIRING_CLAMP, TraceShapes
from streams.config import AssemblyConfig
from streams.ingest.zipkin import spans_from_zipkin_json
from streams.model.span import Span, SpanRow, make_span, span_row

MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000
IDLE_MS = 5_000


def shop_trace(n: int, *, with_server: bool = True, extra: int = 0) -> list[Span]:
    """frontend GET / -> (CLIENT GET /cart -> cart SERVER GET /cart) and a redis call from the
    frontend (never answered by an instrumented peer); `extra` more internal spans."""
    trace = f"{n:032x}"
    spans = [
        make_span(trace, f"{n:08x}00000001", "GET /", "frontend", T0, T0 + 90, kind="SERVER"),
        make_span(
            trace, f"{n:08x}00000002", "GET /cart", "frontend", T0 + 1, T0 + 80,
            kind="CLIENT", parent_span_id=f"{n:08x}00000001",
        ),
        make_span(
            trace, f"{n:08x}00000003", "GET", "frontend", T0 + 81, T0 + 85, kind="CLIENT",
            parent_span_id=f"{n:08x}00000001", attributes={"db.system": "redis"},
        ),
    ]  # fmt: skip
    if with_server:
        spans.append(
            make_span(
                trace, f"{n:08x}00000004", "GET /cart", "cart", T0 + 2, T0 + 79,
                kind="SERVER", parent_span_id=f"{n:08x}00000002",
            )
        )  # fmt: skip
    for i in range(extra):
        spans.append(
            make_span(
                trace, f"{n:08x}{i + 5:08x}", "render", "frontend", T0 + 3, T0 + 4,
                parent_span_id=f"{n:08x}00000001",
            )
        )  # fmt: skip
    return spans


def rows(spans: list[Span]) -> list[SpanRow]:
    return [span_row(s) for s in spans]


def learned(traces: list[list[Span]]) -> TraceShapes:
    shapes = TraceShapes()
    for spans in traces:
        shapes.learn(("frontend", "GET /"), rows(spans))
    return shapes


def test_the_usual_span_count_is_the_most_common_once_enough_traces_were_seen() -> None:
    shapes = learned([shop_trace(i) for i in range(MIN_TRACES - 1)])
    assert shapes.usual_span_count(("frontend", "GET /")) is None
    shapes.learn(("frontend", "GET /"), rows(shop_trace(99, extra=2)))
    assert shapes.usual_span_count(("frontend", "GET /")) == 4
    for i in range(MIN_TRACES):
        shapes.learn(("frontend", "GET /"), rows(shop_trace(100 + i, extra=2)))
    assert shapes.usual_span_count(("frontend", "GET /")) == 6
    assert shapes.usual_span_count(("frontend", "GET /other")) is None


def test_a_tie_picks_the_smaller_count() -> None:
    shapes = learned([shop_trace(i, extra=i % 2) for i in range(MIN_TRACES)])
    assert shapes.usual_span_count(("frontend", "GET /")) == 4


def test_whole_needs_every_parent_and_each_usually_answered_call_s_server_half() -> None:
    shapes = learned([shop_trace(i) for i in range(MIN_TRACES)])
    whole = shop_trace(50)
    assert shapes.is_whole(rows(whole), {s["span_id"] for s in whole})
    # The cart's server half is missing: GET /cart calls have always had one.
    no_server = shop_trace(51, with_server=False)
    assert not shapes.is_whole(rows(no_server), {s["span_id"] for s in no_server})
    # A parent missing (the root not yet arrived).
    orphan = whole[1:]
    assert not shapes.is_whole(rows(orphan), {s["span_id"] for s in orphan})
    # The redis call never had a child (uninstrumented peer): it never holds a trace back.
    assert shapes.is_whole(rows(whole), {s["span_id"] for s in whole})


def test_an_unknown_call_does_not_hold_a_trace_back_and_pairing_flips_after_the_clamp() -> None:
    shapes = TraceShapes()
    no_server = shop_trace(1, with_server=False)
    assert shapes.is_whole(rows(no_server), {s["span_id"] for s in no_server})
    shapes.learn(("frontend", "GET /"), rows(shop_trace(2)))
    assert not shapes.is_whole(rows(no_server), {s["span_id"] for s in no_server})
    # The cart service loses its instrumentation: after enough calls without a server half
    # (the clamp bounds how many), such traces are whole again.
    for i in range(PAIRING_CLAMP):
        shapes.learn(("frontend", "GET /"), rows(shop_trace(10 + i, with_server=False)))
    assert shapes.is_whole(rows(no_server), {s["span_id"] for s in no_server})


class Clock:
    """A processing-time clock that only moves when told."""

    def __init__(self) -> None:
        self.ns = T0

    def __call__(self) -> int:
        return self.ns

    def advance(self, ms: int) -> None:
        self.ns += ms * MS


def early_buffer(clock: Clock, early: bool = True) -> TraceBuffer:
    config = AssemblyConfig(trace_idle_ms=IDLE_MS)
    return TraceBuffer(config, clock, shapes=TraceShapes() if early else None)


def add(buffer: TraceBuffer, spans: list[Span]) -> None:
    for s in spans:
        buffer.add(s)


def teach(buffer: TraceBuffer, clock: Clock, count: int = MIN_TRACES) -> None:
    """Traces of the usual shape emitted by idle, so the buffer learns it."""
    for i in range(count):
        add(buffer, shop_trace(1000 + i))
    clock.advance(IDLE_MS)
    emitted = buffer.sweep()
    assert [e.whole for e in emitted] == [False] * count


def summary(buffer: TraceBuffer) -> list[tuple[str, int, str, bool, int]]:
    return [
        (e.trace_id, e.version, e.completion, e.whole, len(e.spans)) for e in buffer.sweep()
    ]


def test_a_whole_trace_goes_at_the_next_sweep_and_an_incomplete_one_waits_for_idle() -> None:
    clock = Clock()
    buffer = early_buffer(clock)
    teach(buffer, clock)
    whole, missing = shop_trace(1), shop_trace(2, with_server=False)
    add(buffer, whole + missing)
    clock.advance(10)
    assert summary(buffer) == [(whole[0]["trace_id"], 1, "complete", True, 4)]
    assert buffer.stats.traces_whole == 1
    # The missing server half arrives: whole at the next sweep, still long before idle.
    server = shop_trace(2)[3]
    buffer.add(server)
    clock.advance(10)
    assert summary(buffer) == [(missing[0]["trace_id"], 1, "complete", True, 4)]


def test_a_trace_short_of_its_usual_count_waits_for_idle() -> None:
    clock = Clock()
    buffer = early_buffer(clock)
    teach(buffer, clock)
    # Root and both calls, but only 3 of the usual 4 spans: the cart call may still come
    # (here it never does: the cart service is down), so idle decides.
    short = shop_trace(3, with_server=False)[:3]
    add(buffer, short)
    clock.advance(IDLE_MS - 1)
    assert summary(buffer) == []
    clock.advance(1)
    assert summary(buffer) == [(short[0]["trace_id"], 1, "complete", False, 3)]


def test_a_span_after_an_early_emission_makes_a_complete_later_version() -> None:
    clock = Clock()
    buffer = early_buffer(clock)
    teach(buffer, clock)
    spans = shop_trace(4, extra=1)
    add(buffer, spans[:4])
    clock.advance(10)
    assert summary(buffer) == [(spans[0]["trace_id"], 1, "complete", True, 4)]
    buffer.add(spans[4])
    clock.advance(10)
    # Version 2 holds every span; it is whole too, so it does not wait for idle either.
    assert summary(buffer) == [(spans[0]["trace_id"], 2, "complete", True, 5)]


def test_without_learned_shapes_or_with_early_emission_off_idle_decides() -> None:
    for early, taught in ((True, False), (False, True)):
        clock = Clock()
        buffer = early_buffer(clock, early)
        if taught:
            teach(buffer, clock)
        spans = shop_trace(5)
        add(buffer, spans)
        clock.advance(IDLE_MS - 1)
        assert summary(buffer) == [], (early, taught)
        clock.advance(1)
        got: list[Any] = summary(buffer)
        assert got == [(spans[0]["trace_id"], 1, "complete", False, 4)], (early, taught)


def test_the_usual_count_follows_a_change_of_shape_once_the_old_traces_slid_out() -> None:
    from streams.assemble.shapes import RECENT_TRACES

    shapes = learned([shop_trace(i) for i in range(RECENT_TRACES)])
    assert shapes.usual_span_count(("frontend", "GET /")) == 4
    # A deploy adds two spans: the new count wins once it is the more common in the window.
    for i in range(RECENT_TRACES // 2):
        shapes.learn(("frontend", "GET /"), rows(shop_trace(500 + i, extra=2)))
    assert shapes.usual_span_count(("frontend", "GET /")) == 4  # a tie: the smaller
    shapes.learn(("frontend", "GET /"), rows(shop_trace(999, extra=2)))
    assert shapes.usual_span_count(("frontend", "GET /")) == 6
    for i in range(RECENT_TRACES):
        shapes.learn(("frontend", "GET /"), rows(shop_trace(1000 + i, extra=2)))
    assert shapes.usual_span_count(("frontend", "GET /")) == 6


def zipkin_trace(n: int, *, with_server: bool = True, extra: int = 0) -> list[Span]:
    """Through the Zipkin bridge, each span its own payload: web's root GET / with a kind-less
    span naming cart (Zipkin's client side of a call, no kind as old Zipkin reporters send it)
    and cart's server half below it; `extra` more local spans of web."""
    trace = f"{n:032x}"

    def span(span_id: int, parent: int | None, local: str, **fields: Any) -> Span:
        raw: dict[str, Any] = {
            "traceId": trace, "id": f"{n:08x}{span_id:08x}", "name": fields.pop("name"),
            "timestamp": T0 // 1000 + span_id, "duration": 10,
            "localEndpoint": {"serviceName": local}, **fields,
        }  # fmt: skip
        if parent is not None:
            raw["parentId"] = f"{n:08x}{parent:08x}"
        return spans_from_zipkin_json(json.dumps([raw]).encode())[0]

    spans = [
        span(1, None, "web", name="GET /", kind="SERVER"),
        span(2, 1, "web", name="GET /cart", remoteEndpoint={"serviceName": "cart"}),
    ]
    if with_server:
        spans.append(span(3, 2, "cart", name="GET /cart", kind="SERVER"))
    spans.extend(span(4 + i, 1, "web", name="render") for i in range(extra))
    return spans


def test_a_zipkin_client_s_server_half_is_waited_for() -> None:
    # A kind-less Zipkin span naming its peer is a call in Zipkin's model (the service graph
    # pairs it so): a trace lacking the server half that such calls usually have is not whole.
    shapes = TraceShapes()
    for i in range(MIN_TRACES):
        shapes.learn(("web", "GET /"), rows(zipkin_trace(i)))
    whole, no_server = zipkin_trace(50), zipkin_trace(51, with_server=False)
    assert shapes.is_whole(rows(whole), {s["span_id"] for s in whole})
    assert not shapes.is_whole(rows(no_server), {s["span_id"] for s in no_server})


def test_a_zipkin_trace_whose_server_half_comes_later_goes_once_whole() -> None:
    clock = Clock()
    buffer = early_buffer(clock)
    for i in range(MIN_TRACES):
        add(buffer, zipkin_trace(1000 + i, extra=1))
    clock.advance(IDLE_MS)
    assert len(buffer.sweep()) == MIN_TRACES
    # The usual 4 spans, but a second render instead of cart's server half: not whole yet.
    spans = zipkin_trace(7, with_server=False, extra=2)
    add(buffer, spans)
    clock.advance(10)
    assert summary(buffer) == []
    buffer.add(zipkin_trace(7)[2])
    clock.advance(10)
    assert summary(buffer) == [(spans[0]["trace_id"], 1, "complete", True, 5)]
