"""The trace page's tools: subtree toggles and a large trace opening collapsed, the find box's
hooks, the OTLP JSON download (read back as `tracepipe produce` reads it: same spans stored),
and the comparison of two traces (Jaeger TraceDiff's groups, with time)."""

from __future__ import annotations

import json

from streams.ingest import detect_format, spans_from_payload
from streams.model.span import Span, make_span
from streams.query.waterfall import stored_spans
from streams.query.web import Page
from streams.query.web.compare import GroupDiff, by_operation, compare_page, compare_spans
from streams.query.web.download import Download, otlp_request, trace_download
from streams.query.web.trace import trace_page
from streams.query.web.trace_fetch import find_text
from streams.query.web.trace_layout import VISIBLE_ROWS, initially_collapsed, layout_waterfall
from streams.sink.spans import OTEL_TRACES, OTEL_TRACES_COLUMNS, span_row
from streams.warehouse import Warehouse
from tests.unit.query.web.conftest import StoreTrace
from tests.unit.query.web.dom import Element, parse, select
from tests.unit.query.web.test_trace import (
    CACHE,
    CHARGE,
    DB,
    MS,
    ROOT,
    SETTINGS,
    T0,
    T,
    page_data,
    page_rows,
)
from tests.unit.query.web.test_trace import checkout_trace as checkout

BIG = "be" * 16
CALLS, CALLEES, LEAVES = 20, 10, 24
"""The big trace: a root calls 20 services, each calls 10, each of those 24 leaves (4,821)."""


def big_trace(trace_id: str = BIG, spans: int = 5_000) -> list[Span]:
    """A `spans`-span trace four levels deep: root, 20 calls, 10 callees each, then leaves
    spread over the callees until the count is reached."""
    out = [make_span(trace_id, f"{1:016x}", "GET /report", "gateway", T0, T0 + 1000 * MS)]
    callees: list[str] = []
    for c in range(CALLS):
        call = f"{2 + c:016x}"
        out.append(
            make_span(
                trace_id,
                call,
                f"call {c}",
                f"svc-{c}",
                T0 + c * MS,
                T0 + 900 * MS,
                parent_span_id=out[0]["span_id"],
                kind="CLIENT",
            )
        )
        for e in range(CALLEES):
            callee = f"{100 + c * CALLEES + e:016x}"
            callees.append(callee)
            out.append(
                make_span(
                    trace_id,
                    callee,
                    f"work {e}",
                    f"svc-{c}",
                    T0 + (c + e) * MS,
                    T0 + 800 * MS,
                    parent_span_id=call,
                )
            )
    n = 0
    while len(out) < spans:
        parent = callees[n % len(callees)]
        out.append(
            make_span(
                trace_id,
                f"{10_000 + n:016x}",
                "SELECT",
                "db",
                T0 + 50 * MS,
                T0 + 60 * MS,
                parent_span_id=parent,
                attributes={"db.row": n},
            )
        )
        n += 1
    return out


def of(elements: list[Element], tag: str, cls: str = "") -> list[Element]:
    """The elements of one parse with that tag (and class): ancestors compare by identity."""
    return [e for e in elements if e.tag == tag and (not cls or cls in e.classes)]


def test_rows_with_children_get_a_toggle_and_the_page_its_tools(
    web_tables: Warehouse, store_trace: StoreTrace
) -> None:
    store_trace(checkout())
    page = trace_page(web_tables, T, "", SETTINGS)
    rows = page_rows(page.html)
    assert [(r["span_id"], r["depth"]) for r in rows] == [
        (ROOT, 0),
        (CACHE, 1),
        (CHARGE, 1),
        (DB, 2),
    ]
    # The rows with children get a toggle; a small trace opens whole: nothing collapsed.
    assert [r["span_id"] for r in rows if r["children"]] == [ROOT, CHARGE]
    assert {r["children"] for r in rows} == {0, 1}
    assert not select(page.html, "p", "collapse-note")
    ids = {e.attrs.get("id") for e in select(page.html)}
    assert {"collapse-all", "expand-all", "find", "find-count"} <= ids
    (download,) = select(page.html, "a", "download")
    assert download.attrs["href"] == f"/ui/trace/{T}/otlp.json"
    assert download.attrs["download"] == f"trace-{T}.json"
    elements = parse(page.html)
    (form,) = of(elements, "form", "compare")
    assert form.attrs["action"] == "/ui/compare"
    fields = {
        i.attrs["name"]: i.attrs.get("value", "")
        for i in of(elements, "input")
        if form in i.ancestors
    }
    assert fields == {"a": T, "b": ""}


def test_find_searches_attributes_and_resource_not_the_rest_of_the_details(
    web_tables: Warehouse, store_trace: StoreTrace
) -> None:
    spans = checkout()
    spans[1]["resource_attributes"] = {"service.name": "redis", "host.name": "cache-1"}
    store_trace(spans)
    assert page_data(trace_page(web_tables, T, "", SETTINGS).html)["find_url"] == (
        f"/ui/trace/{T}/find.json"
    )
    got = find_text(web_tables, T.upper())
    assert isinstance(got, Download) and got.content_type == "application/json"
    texts = json.loads(got.body)
    charge, resource = texts["spans"][CHARGE]
    assert charge == "card.brand\nvisa\npayment.amount\n42"
    assert texts["resources"][resource] == "service.name\npayment"
    # One text per distinct resource: web's, redis' own, payment's (the charge and its query).
    assert sorted(texts["resources"]) == [
        "host.name\ncache-1\nservice.name\nredis",
        "service.name\npayment",
        "service.name\nweb",
    ]
    assert texts["spans"][DB] == ["", resource]
    # Neither the status message, nor events, links or the source format.
    for left_out in ("card declined", "exception", "Declined", "cd" * 16, "tracepipe."):
        assert left_out not in got.body.decode()
    missing = find_text(web_tables, "ef" * 16)
    assert isinstance(missing, Page) and missing.status == 404
    bad = find_text(web_tables, "nope")
    assert isinstance(bad, Page) and bad.status == 400


def test_a_5000_span_trace_opens_collapsed_below_the_level_that_keeps_it_short(
    web_tables: Warehouse, store_trace: StoreTrace
) -> None:
    waterfall = layout_waterfall(big_trace())
    rows = waterfall.rows
    assert len(rows) == 5_000
    parents, collapsed, hidden = initially_collapsed(rows)
    # Depths 0-1 hold 21 rows, 0-2 hold 221 > 200: the 20 calls start collapsed.
    assert {rows[i].depth for i in collapsed} == {1} and len(collapsed) == CALLS
    assert len(rows) - len(hidden) == 1 + CALLS
    assert len(parents) == 1 + CALLS + CALLS * CALLEES
    # The span asked for (?span=) is in sight: its ancestors stay expanded.
    leaf = rows[-1].span["span_id"]
    _, collapsed, hidden = initially_collapsed(rows, leaf)
    last_call = max(i for i, row in enumerate(rows) if row.depth == 1)
    assert len(collapsed) == CALLS - 1 and last_call not in collapsed
    # Everything after the last call in tree order is its subtree, now in sight.
    assert len(rows) - len(hidden) == 1 + CALLS + len(rows[last_call + 1 :])
    assert VISIBLE_ROWS == 200

    store_trace(big_trace())
    page = trace_page(web_tables, BIG, "", SETTINGS)
    # Light: the rows as compact data, no span's details (they come when a span opens).
    assert len(page.html.encode()) < 1_000_000
    assert "db.row" not in page.html
    shown = page_rows(page.html)
    assert len(shown) == 5_000
    assert [r["depth"] for r in shown if r["children"] == 2] == [1] * CALLS
    (note,) = select(page.html, "p", "collapse-note")
    assert note.text.startswith("21 of 5,000 spans shown: 20 subtrees start collapsed")


def test_the_download_is_an_otlp_json_request_of_the_stored_spans() -> None:
    span = make_span(
        T,
        CHARGE,
        "charge",
        "payment",
        5,
        9,
        parent_span_id=ROOT,
        kind="CLIENT",
        status_code="ERROR",
        status_message="declined",
        attributes={"n": "42"},
        events=[{"time_unix_nano": 7, "name": "retry", "attributes": {"try": "2"}}],
        links=[{"trace_id": "cd" * 16, "span_id": DB, "trace_state": "k=v", "attributes": {}}],
    )
    span["resource_attributes"] = {"host.name": "h1"}  # no service.name: it is added
    span["scope_name"], span["scope_version"] = "lib", "1.2"
    assert otlp_request([span]) == {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        {"key": "host.name", "value": {"stringValue": "h1"}},
                        {"key": "service.name", "value": {"stringValue": "payment"}},
                    ]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "lib", "version": "1.2"},
                        "spans": [
                            {
                                "traceId": T,
                                "spanId": CHARGE,
                                "parentSpanId": ROOT,
                                "traceState": "",
                                "name": "charge",
                                "kind": 3,
                                "startTimeUnixNano": "5",
                                "endTimeUnixNano": "9",
                                "attributes": [{"key": "n", "value": {"stringValue": "42"}}],
                                "events": [
                                    {
                                        "timeUnixNano": "7",
                                        "name": "retry",
                                        "attributes": [
                                            {"key": "try", "value": {"stringValue": "2"}}
                                        ],
                                    }
                                ],
                                "links": [
                                    {
                                        "traceId": "cd" * 16,
                                        "spanId": DB,
                                        "traceState": "k=v",
                                        "attributes": [],
                                    }
                                ],
                                "status": {"code": 2, "message": "declined"},
                            }
                        ],
                    }
                ],
            }
        ]
    }


def test_download_then_produce_stores_the_same_spans(
    web_tables: Warehouse, store_trace: StoreTrace
) -> None:
    spans = checkout()
    spans[1]["resource_attributes"] = {"service.name": "redis", "host.name": "cache-1"}
    spans[3]["scope_name"], spans[3]["scope_version"] = "sqlalchemy", "2.0"
    spans[2]["trace_state"] = "vendor=1"
    store_trace(spans)
    before = sorted(stored_spans(web_tables, T), key=lambda s: s["span_id"])
    got = trace_download(web_tables, T.upper())
    assert isinstance(got, Download)
    assert got.content_type == "application/json" and got.filename == f"trace-{T}.json"
    assert len(json.loads(got.body)["resourceSpans"]) == 3  # web, redis (own resource), payment

    # What `tracepipe produce` does with the file: detect, decode, validate; then the sink.
    assert detect_format(got.body) == "otlp_json"
    produced = spans_from_payload(got.body, "otlp_json")
    web_tables.execute(f"TRUNCATE TABLE {OTEL_TRACES}")
    web_tables.insert(OTEL_TRACES, OTEL_TRACES_COLUMNS, [span_row(s) for s in produced])
    after = sorted(stored_spans(web_tables, T), key=lambda s: s["span_id"])
    assert [s["source_format"] for s in after] == ["otlp_json"] * 4
    assert [{**s, "source_format": ""} for s in after] == [
        {**s, "source_format": ""} for s in before
    ]


def test_download_of_a_missing_or_malformed_trace_says_so(web_tables: Warehouse) -> None:
    missing = trace_download(web_tables, "ef" * 16)
    assert isinstance(missing, Page) and missing.status == 404
    assert "nothing to download" in missing.html
    bad = trace_download(web_tables, "nope")
    assert isinstance(bad, Page) and bad.status == 400


def later_checkout(trace_id: str) -> list[Span]:
    """The checkout again, changed: no cache call; the charge queries the database twice
    (20 + 30 ms, was one 70 ms query); the charge takes 95 ms (was 88 ms, +8%: within 10%);
    GET / is 130 ms (was 100: slower) and calls a new fraud check."""
    spans = checkout(trace_id)
    root, _, charge, db = spans
    root = {**root, "end_time_unix_nano": T0 + 130 * MS}
    charge = {**charge, "end_time_unix_nano": T0 + 97 * MS}
    db2 = make_span(
        trace_id, "6" * 16, "SELECT", "payment", T0 + 40 * MS, T0 + 70 * MS, parent_span_id=CHARGE
    )
    db = {**db, "end_time_unix_nano": T0 + 30 * MS}
    fraud = make_span(
        trace_id, "7" * 16, "score", "fraud", T0 + 97 * MS, T0 + 120 * MS, parent_span_id=ROOT
    )
    return [root, charge, db, db2, fraud]


def test_compare_groups_spans_by_call_path_with_counts_and_time() -> None:
    diffs = compare_spans(checkout(), later_checkout("cd" * 16))
    web, cache, charge = ("web", "GET /"), ("redis", "cache"), ("payment", "charge")
    select_, fraud = ("payment", "SELECT"), ("fraud", "score")
    # Parents before children, siblings by service and operation.
    assert [(d, d.changes) for d in diffs] == [
        (GroupDiff((web,), 1, 1, 100 * MS, 130 * MS), ("slower",)),
        (GroupDiff((web, fraud), 0, 1, 0, 23 * MS), ("added",)),
        (GroupDiff((web, charge), 1, 1, 88 * MS, 95 * MS), ()),
        (GroupDiff((web, charge, select_), 1, 2, 70 * MS, 50 * MS), ("more spans", "faster")),
        (GroupDiff((web, cache), 1, 0, 4 * MS, 0), ("removed",)),
    ]
    # Summed per service and operation, largest change of time first.
    assert [(d.group, d.total_b_ns - d.total_a_ns) for d in by_operation(diffs)] == [
        ((web,), 30 * MS),
        ((fraud,), 23 * MS),
        ((select_,), -20 * MS),
        ((charge,), 7 * MS),
        ((cache,), -4 * MS),
    ]


def test_same_operation_under_different_callers_is_two_groups() -> None:
    # Jaeger's rule: the group is the lineage, not just service and operation; an orphan
    # (parent not stored) starts its own lineage.
    a = [
        make_span(T, ROOT, "GET /", "web", 0, 10),
        make_span(T, CACHE, "get", "redis", 1, 2, parent_span_id=ROOT),
        make_span(T, CHARGE, "charge", "payment", 2, 9, parent_span_id=ROOT),
        make_span(T, DB, "get", "redis", 3, 4, parent_span_id=CHARGE),
        make_span(T, "8" * 16, "get", "redis", 3, 4, parent_span_id="9" * 16),
    ]
    groups = [(d.group, d.count_a) for d in compare_spans(a, a)]
    assert groups == [
        ((("redis", "get"),), 1),
        ((("web", "GET /"),), 1),
        ((("web", "GET /"), ("payment", "charge")), 1),
        ((("web", "GET /"), ("payment", "charge"), ("redis", "get")), 1),
        ((("web", "GET /"), ("redis", "get")), 1),
    ]
    assert not any(d.changes for d in compare_spans(a, a))


def test_the_compare_page_shows_both_traces_and_every_group(
    web_tables: Warehouse, store_trace: StoreTrace
) -> None:
    other = "cd" * 16
    store_trace(checkout())
    store_trace(later_checkout(other))
    page = compare_page(web_tables, {"a": T, "b": other.upper()})
    assert page.status == 200
    elements = parse(page.html)
    links = [a.attrs["href"] for a in of(elements, "a", "mono")]
    assert links == [f"/ui/trace/{T}", f"/ui/trace/{other}"]
    tables = of(elements, "table", "data")
    assert len(tables) == 2
    path_rows = [r for r in of(elements, "tr") if tables[1] in r.ancestors][1:]
    cells = [[c.text for c in of(elements, "td") if r in c.ancestors] for r in path_rows]
    assert [(c[0], c[1], c[2], c[5], c[6]) for c in cells] == [
        ("webGET /", "1", "1", "+30.0", "slower"),
        ("fraudscore", "0", "1", "+23.0", "added"),
        ("paymentcharge", "1", "1", "+7.00", ""),
        ("paymentSELECT", "1", "2", "-20.0", "more spans, faster"),
        ("rediscache", "1", "0", "-4.00", "removed"),
    ]
    (summary,) = select(page.html, "p", "note")
    assert "5, of which 1 added, 1 removed, 1 slower, 1 faster, 1 more spans" in summary.text


def test_the_compare_page_says_what_is_missing(
    web_tables: Warehouse, store_trace: StoreTrace
) -> None:
    store_trace(checkout())
    page = compare_page(web_tables, {"a": T})
    assert page.status == 400
    (problem,) = select(page.html, "div", "problem")
    assert "Give trace B's id" in problem.text
    page = compare_page(web_tables, {"a": T, "b": "xyz"})
    assert page.status == 400
    (problem,) = select(page.html, "div", "problem")
    assert problem.text.startswith("Trace B: 'xyz' is not a trace id")
    page = compare_page(web_tables, {"a": T, "b": "ef" * 16})
    assert page.status == 404
    assert f"No spans are stored for trace B ({'ef' * 16})" in page.html
