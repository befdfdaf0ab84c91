"""The waterfall shows the tree in order, marks the critical path and errors."""

from __future__ import annotations

from streams.model.span import make_span
from streams.query.waterfall import render_error_origins, render_waterfall, spans_from_rows
from streams.query.web.trace_layout import layout_waterfall
from streams.sink.spans import OTEL_TRACES_COLUMNS, span_row

T = "a" * 32


def test_tree_order_critical_path_and_errors() -> None:
    root = make_span(T, "1" * 16, "GET /", "web", 0, 100_000_000, kind="SERVER")
    fast = make_span(T, "2" * 16, "cache", "redis", 1_000_000, 5_000_000, parent_span_id="1" * 16)
    slow = make_span(
        T,
        "3" * 16,
        "charge",
        "payment",
        2_000_000,
        90_000_000,
        parent_span_id="1" * 16,
        status_code="ERROR",
        status_message="declined",
    )
    leaf = make_span(T, "4" * 16, "db", "payment", 10_000_000, 80_000_000, parent_span_id="3" * 16)
    out = render_waterfall([leaf, slow, root, fast]).splitlines()[2:]
    assert [line.split("|")[0].rstrip() for line in out] == [
        "web: GET /",
        "  redis: cache",
        "  payment: charge",
        "    payment: db",
    ]
    marks = {line.split("|")[0].strip(): line.split("|")[2].rstrip() for line in out}
    assert marks["web: GET /"].endswith("*")
    assert marks["payment: charge"].rstrip().endswith("*!  declined")
    assert marks["payment: db"].rstrip().endswith("*")
    assert not marks["redis: cache"].rstrip().endswith("*")  # parallel, off the critical path


def test_orphans_and_cycles_are_shown_once() -> None:
    a = make_span(T, "1" * 16, "a", "s", 0, 10, parent_span_id="2" * 16)
    b = make_span(T, "2" * 16, "b", "s", 0, 10, parent_span_id="1" * 16)
    orphan = make_span(T, "3" * 16, "c", "s", 0, 10, parent_span_id="9" * 16)
    lines = render_waterfall([a, b, orphan]).splitlines()[2:]
    assert sorted(line.split("|")[0].strip() for line in lines) == ["s: a", "s: b", "s: c"]


def test_rows_round_trip_to_spans() -> None:
    span = make_span(T, "1" * 16, "op", "svc", 5, 25, kind="CLIENT", status_code="ERROR")
    row = dict(zip(OTEL_TRACES_COLUMNS, span_row(span), strict=True))
    (back,) = spans_from_rows([row])
    assert back["kind"] == "CLIENT" and back["status_code"] == "ERROR"
    assert back["end_time_unix_nano"] == 25
    assert render_waterfall([]) == "(no spans)"


def test_async_children_read_back_from_otel_traces_are_off_the_critical_path() -> None:
    """The CLI waterfall and the web page use the assembler's critical path on spans read back
    from otel_traces (link attributes as stored text): a CONSUMER under a PRODUCER and a span
    with a follows-from link to its parent are off it, as in Jaeger UI."""
    root = make_span(T, "1" * 16, "POST /order", "web", 0, 100_000_000, kind="SERVER")
    send = make_span(
        T, "2" * 16, "orders publish", "web", 10_000_000, 60_000_000, kind="PRODUCER",
        parent_span_id="1" * 16,
    )  # fmt: skip
    consume = make_span(
        T, "3" * 16, "orders process", "fulfil", 20_000_000, 90_000_000, kind="CONSUMER",
        parent_span_id="2" * 16,
    )  # fmt: skip
    follow = make_span(
        T, "4" * 16, "send receipt", "web", 60_000_000, 99_000_000, parent_span_id="1" * 16,
        links=[{"trace_id": T, "span_id": "1" * 16, "trace_state": "",
                "attributes": {"opentracing.ref_type": "follows_from"}}],
    )  # fmt: skip
    stored = (root, send, consume, follow)
    rows = [dict(zip(OTEL_TRACES_COLUMNS, span_row(s), strict=True)) for s in stored]
    spans = spans_from_rows(rows)
    out = render_waterfall(spans).splitlines()[2:]
    marks = {line.split("|")[0].strip(): line.split("|")[2].rstrip() for line in out}
    assert marks["web: POST /order"].endswith("*")
    assert marks["web: orders publish"].endswith("*")
    assert not marks["fulfil: orders process"].endswith("*")
    assert not marks["web: send receipt"].endswith("*")
    on_path = {row.span["span_id"]: row.critical_ns for row in layout_waterfall(spans).rows}
    assert on_path == {"1" * 16: 50_000_000, "2" * 16: 50_000_000, "3" * 16: 0, "4" * 16: 0}


def test_error_origins_follow_the_waterfall() -> None:
    root = make_span(
        T, "1" * 16, "POST /checkout", "web", 0, 100, kind="SERVER", status_code="ERROR"
    )
    call = make_span(
        T, "2" * 16, "reserve", "web", 10, 90, kind="CLIENT", status_code="ERROR",
        parent_span_id="1" * 16,
    )  # fmt: skip
    server = make_span(
        T, "3" * 16, "Reserve", "inventory", 11, 89, kind="SERVER", status_code="ERROR",
        status_message="out of stock", parent_span_id="2" * 16,
    )  # fmt: skip
    handled = make_span(
        T, "4" * 16, "List", "recs", 91, 99, status_code="ERROR", parent_span_id="5" * 16
    )
    fallback = make_span(T, "5" * 16, "recommend", "web", 90, 100, parent_span_id="1" * 16)
    assert render_error_origins([root, call, server, handled, fallback]).splitlines() == [
        "error origins (where an error began -> the services it propagated to):",
        "  inventory: Reserve  out of stock  -> web (reached the root)",
        "  recs: List  (not propagated: its parent did not error, or did not wait for it)",
    ]
    assert render_error_origins([root]).splitlines()[1] == "  web: POST /checkout  (the root span)"
    assert render_error_origins([fallback]) == ""
