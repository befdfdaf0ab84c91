"""Generated traces: deterministic, well-formed, shaped by incidents and skew, paced to a rate;
incident specs parse or say what form they expect."""

from __future__ import annotations

import dataclasses
import functools
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from streams.assemble.graph import edges_from_trace
from streams.assemble.record import TraceRecord, build_trace_record
from streams.errors import ConfigError
from streams.generate.generator import TraceGenerator
from streams.generate.incident import Incident, parse_duration_ns, parse_incident
from streams.generate.otel_sink import otel_sink
from streams.generate.pacing import RunStats, run_at_rate
from streams.generate.topology import default_topology
from streams.generate.topology_types import Topology
from streams.model.span import Span
from streams.sdk.otel import span_from_otel

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
S = 1_000_000_000
CHECKOUT = "frontend/POST /checkout"


def webshop() -> Topology:
    return default_topology()


def by_name(spans: Sequence[Span], name: str, kind: str) -> Span:
    (span,) = [s for s in spans if s["name"] == name and s["kind"] == kind]
    return span


def duration_ns(span: Span) -> int:
    return span["end_time_unix_nano"] - span["start_time_unix_nano"]


def record(spans: list[Span]) -> TraceRecord:
    return build_trace_record(spans, version=1, completion="complete", emitted_at_unix_nano=T0)


def without_ids(traces: Sequence[Sequence[Span]]) -> list[dict[str, Any]]:
    """The spans with every trace and span id replaced by the order it first appears in: what
    is left is the shape of the load (structure, hosts, times, errors, attributes)."""
    order: dict[str, str] = {}

    def ordinal(value: str) -> str:
        return order.setdefault(value, f"#{len(order)}") if value else ""

    return [
        {
            **span,
            "trace_id": ordinal(span["trace_id"]),
            "span_id": ordinal(span["span_id"]),
            "parent_span_id": ordinal(span["parent_span_id"]),
            "links": [
                {**link, "trace_id": ordinal(link["trace_id"]), "span_id": ordinal(link["span_id"])}
                for link in span["links"]
            ],
        }
        for spans in traces
        for span in spans
    ]


def traces_over(
    generator: TraceGenerator, n: int, step_ns: int, entry: str | None = None
) -> list[list[Span]]:
    return [generator.trace(T0 + i * step_ns, entry) for i in range(n)]


# --- determinism ------------------------------------------------------------------------------


def test_same_seeds_same_traces_other_seed_other_traces() -> None:
    a = traces_over(TraceGenerator(webshop(), seed=7, id_seed=1), 50, 10 * MS)
    b = traces_over(TraceGenerator(webshop(), seed=7, id_seed=1), 50, 10 * MS)
    c = traces_over(TraceGenerator(webshop(), seed=8, id_seed=1), 50, 10 * MS)
    assert a == b
    assert without_ids(a) != without_ids(c)
    assert len({t[0]["trace_id"] for t in a}) == 50


def test_entrypoints_are_drawn_by_weight() -> None:
    generator = TraceGenerator(webshop(), seed=1)
    roots = Counter(t[-1]["name"] for t in traces_over(generator, 2000, MS))
    # Weights 4 : 4 : 2.
    assert roots["GET /"] == pytest.approx(800, abs=80)
    assert roots["GET /product"] == pytest.approx(800, abs=80)
    assert roots["POST /checkout"] == pytest.approx(400, abs=60)


# --- shape --------------------------------------------------------------------------------------


def test_checkout_trace_shape() -> None:
    spans = TraceGenerator(webshop(), seed=2).trace(T0, CHECKOUT)
    assert len(spans) == 17
    ids = {s["span_id"] for s in spans}
    assert len(ids) == 17
    assert {s["trace_id"] for s in spans} == {spans[0]["trace_id"]}
    root = spans[-1]  # children first, the root last
    assert (root["name"], root["kind"], root["parent_span_id"]) == ("POST /checkout", "SERVER", "")
    assert root["start_time_unix_nano"] == T0
    assert all(s["parent_span_id"] in ids for s in spans if s is not root)
    for span in spans:
        resource = span["resource_attributes"]
        assert resource["service.name"] == span["service_name"]
        assert resource["host.name"] == resource["service.instance.id"]
        assert str(resource["host.name"]).startswith(span["service_name"] + "-")
        assert span["scope_name"] == "tracepipe.generate"


def test_extra_resource_attributes_mark_every_span() -> None:
    generator = TraceGenerator(webshop(), seed=2, resource_attributes={"tracepipe.demo.run": "r1"})
    spans = generator.trace(T0, CHECKOUT)
    assert all(s["resource_attributes"]["tracepipe.demo.run"] == "r1" for s in spans)
    with pytest.raises(ConfigError, match=r"cannot set service\.name"):
        TraceGenerator(webshop(), resource_attributes={"service.name": "x"})


def test_a_parent_covers_its_synchronous_children() -> None:
    for spans in traces_over(TraceGenerator(webshop(), seed=3), 200, MS):
        index = {s["span_id"]: s for s in spans}
        for span in spans:
            parent = index.get(span["parent_span_id"])
            if parent is None or span["kind"] == "CONSUMER":
                continue
            assert parent["start_time_unix_nano"] <= span["start_time_unix_nano"]
            assert span["end_time_unix_nano"] <= parent["end_time_unix_nano"]
            if span["kind"] == "SERVER":  # the client span adds the network time
                assert parent["start_time_unix_nano"] < span["start_time_unix_nano"]
                assert span["end_time_unix_nano"] < parent["end_time_unix_nano"]


def test_parallel_calls_overlap_and_sequential_ones_do_not() -> None:
    spans = TraceGenerator(webshop(), seed=4).trace(T0, CHECKOUT)
    place_order = by_name(spans, "PlaceOrder", "SERVER")
    calls = [s for s in spans if s["parent_span_id"] == place_order["span_id"]]
    get_cart = by_name(calls, "GetCart", "CLIENT")
    group = [by_name(calls, n, "CLIENT") for n in ("Charge", "GetQuote", "Convert", "Reserve")]
    latest_start = max(s["start_time_unix_nano"] for s in group)
    earliest_end = min(s["end_time_unix_nano"] for s in group)
    assert latest_start < earliest_end  # all four run at once
    assert get_cart["end_time_unix_nano"] <= min(s["start_time_unix_nano"] for s in group)
    producer = by_name(calls, "orders publish", "PRODUCER")
    assert producer["start_time_unix_nano"] >= max(s["end_time_unix_nano"] for s in group)


def test_producer_consumer_pairs_are_parent_and_link() -> None:
    for spans in traces_over(TraceGenerator(webshop(), seed=5), 100, MS, CHECKOUT):
        producer = by_name(spans, "orders publish", "PRODUCER")
        consumer = by_name(spans, "ShipOrder", "CONSUMER")
        assert producer["service_name"] == "checkout"
        assert producer["attributes"]["messaging.system"] == "kafka"
        assert producer["attributes"]["messaging.destination.name"] == "orders"
        assert consumer["service_name"] == "shipping"
        assert consumer["parent_span_id"] == producer["span_id"]
        assert [(k["trace_id"], k["span_id"]) for k in consumer["links"]] == [
            (producer["trace_id"], producer["span_id"])
        ]
        # After the queue delay, and nobody waits for it.
        assert consumer["start_time_unix_nano"] > producer["end_time_unix_nano"]


def test_database_calls_are_leaf_client_spans() -> None:
    spans = TraceGenerator(webshop(), seed=6).trace(T0, CHECKOUT)
    parents = {s["parent_span_id"] for s in spans}
    databases = [s for s in spans if "db.system" in s["attributes"]]
    assert {(s["service_name"], s["name"]) for s in databases} == {
        ("cart", "HGETALL"),
        ("inventory", "UPDATE stock"),
    }
    for span in databases:
        assert span["kind"] == "CLIENT"
        assert span["span_id"] not in parents
    update = by_name(spans, "UPDATE stock", "CLIENT")
    assert update["attributes"] == {
        "db.system": "postgresql",
        "db.name": "inventory",
        "db.operation": "UPDATE stock",
        "server.address": "postgres",
    }


def test_latency_is_lognormal_around_the_median() -> None:
    generator = TraceGenerator(webshop(), seed=9)
    charges = [
        duration_ns(by_name(spans, "Charge", "SERVER"))
        for spans in traces_over(generator, 1500, MS, CHECKOUT)
    ]
    assert statistics.median(charges) == pytest.approx(40 * MS, rel=0.06)
    assert max(charges) > 3 * 40 * MS  # a long tail (sigma 0.6)


# --- errors -------------------------------------------------------------------------------------


def test_errors_fail_their_callers_up_to_the_root() -> None:
    incident = parse_incident("inventory/Reserve:errors=100%")
    generator = TraceGenerator(webshop(), seed=10, incidents=[incident])
    spans = generator.trace(T0, CHECKOUT)
    failed = {
        (s["service_name"], s["name"], s["kind"]) for s in spans if s["status_code"] == "ERROR"
    }
    assert failed == {
        ("inventory", "Reserve", "SERVER"),
        ("checkout", "Reserve", "CLIENT"),
        ("checkout", "PlaceOrder", "SERVER"),
        ("frontend", "PlaceOrder", "CLIENT"),
        ("frontend", "POST /checkout", "SERVER"),
    }
    reserve = by_name(spans, "Reserve", "SERVER")
    assert reserve["attributes"]["error.type"] == "InternalError"
    assert reserve["status_message"] == "inventory/Reserve failed"
    assert by_name(spans, "PlaceOrder", "SERVER")["attributes"]["error.type"] == "DownstreamError"
    assert generator.error_traces == 1
    assert generator.error_spans == 5


def test_an_asynchronous_consumer_never_fails_its_producer() -> None:
    generator = TraceGenerator(
        webshop(), seed=11, incidents=[parse_incident("shipping/ShipOrder:errors=100%")]
    )
    traces = traces_over(generator, 300, MS, CHECKOUT)
    assert all(by_name(t, "ShipOrder", "CONSUMER")["status_code"] == "ERROR" for t in traces)
    failed_producers = sum(
        by_name(t, "orders publish", "PRODUCER")["status_code"] == "ERROR" for t in traces
    )
    failed_roots = sum(t[-1]["status_code"] == "ERROR" for t in traces)
    assert failed_producers == 0
    assert failed_roots < 15  # only the topology's own small error rates


# --- incidents ----------------------------------------------------------------------------------


def test_latency_incident_multiplies_the_median_inside_its_window_only() -> None:
    incident = parse_incident("payment:latency*5@2m-4m")
    generator = TraceGenerator(webshop(), seed=12, incidents=[incident], origin_ns=T0)
    inside: list[int] = []
    outside: list[int] = []
    for spans in traces_over(generator, 3000, 120 * MS, CHECKOUT):  # six minutes
        charge = by_name(spans, "Charge", "SERVER")
        offset_ns = charge["start_time_unix_nano"] - T0
        (inside if 120 * S <= offset_ns < 240 * S else outside).append(duration_ns(charge))
    assert len(inside) == pytest.approx(1000, abs=5)
    ratio = statistics.median(inside) / statistics.median(outside)
    assert 4.4 < ratio < 5.6
    assert statistics.median(outside) == pytest.approx(40 * MS, rel=0.08)


def test_error_incident_sets_the_error_rate_inside_its_window() -> None:
    incident = parse_incident("inventory:errors=20%@1m-3m")
    generator = TraceGenerator(webshop(), seed=13, incidents=[incident], origin_ns=T0)
    inside: list[bool] = []
    outside: list[bool] = []
    for spans in traces_over(generator, 3000, 80 * MS, CHECKOUT):  # four minutes
        reserve = by_name(spans, "Reserve", "SERVER")
        own_error = reserve["attributes"].get("error.type") == "InternalError"
        offset_ns = reserve["start_time_unix_nano"] - T0
        (inside if 60 * S <= offset_ns < 180 * S else outside).append(own_error)
    assert sum(inside) / len(inside) == pytest.approx(0.20, abs=0.04)
    assert sum(outside) / len(outside) < 0.01  # the topology's 0.2%


def test_incidents_must_name_the_topology() -> None:
    with pytest.raises(ConfigError, match=r"unknown service 'paymnt'.*has cart, checkout"):
        TraceGenerator(webshop(), incidents=[parse_incident("paymnt:latency*5")])
    with pytest.raises(ConfigError, match=r"service 'payment' has no operation 'Refund'"):
        TraceGenerator(webshop(), incidents=[parse_incident("payment/Refund:latency*5")])


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("payment:latency*5@2m-4m", Incident("payment", None, 5.0, 0, None, 120 * S, 240 * S)),
        ("inventory:errors=20%@1m-3m", Incident("inventory", None, 1.0, 0, 0.2, 60 * S, 180 * S)),
        (
            "payment/Charge:latency*3@30s-90s",
            Incident("payment", "Charge", 3.0, 0, None, 30 * S, 90 * S),
        ),
        (
            "frontend/GET /product:latency+50ms@1m30s",
            Incident("frontend", "GET /product", 1.0, 50 * MS, None, 90 * S, None),
        ),
        ("cart:latency+0.5s@10-", Incident("cart", None, 1.0, S // 2, None, 10 * S, None)),
        (" checkout:latency*1.5, errors=0.05 ", Incident("checkout", None, 1.5, 0, 0.05, 0, None)),
    ],
)
def test_incident_specs(spec: str, expected: Incident) -> None:
    incident = parse_incident(spec)
    assert incident.spec == spec.strip()
    assert incident == dataclasses.replace(expected, spec=spec.strip())


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("payment", "no SERVICE: before the effect"),
        ("payment/:latency*5", "invalid target 'payment/'"),
        ("payment:slower*5@2m-4m", "unknown effect 'slower*5'"),
        ("payment:latency*0", "invalid latency factor 0"),
        ("payment:errors=120%", "invalid error rate 120%"),
        ("payment:latency*5@4m-2m", "the window '4m-2m' ends before it starts"),
        ("payment:latency*5@2x-4m", "invalid duration '2x'"),
    ],
)
def test_invalid_incident_specs_show_the_form(spec: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_incident(spec)
    message = str(info.value)
    assert message.startswith(f"invalid incident {spec!r}: {problem}")
    assert "expected SERVICE[/OPERATION]:EFFECT[,EFFECT...][@START-[END]]" in message
    assert "payment:latency*5@2m-4m" in message


def test_durations() -> None:
    assert parse_duration_ns("90s") == 90 * S
    assert parse_duration_ns("1m30s") == 90 * S
    assert parse_duration_ns("500ms") == S // 2
    assert parse_duration_ns("1h") == 3600 * S
    assert parse_duration_ns("2.5") == 5 * S // 2
    assert parse_duration_ns("0") == 0
    for bad in ("", "5x", "-1s", "1m 30s", "s"):
        with pytest.raises(ValueError, match="invalid duration"):
            parse_duration_ns(bad)


# --- clock skew ---------------------------------------------------------------------------------


def test_clock_skew_shifts_each_hosts_spans_by_a_fixed_offset() -> None:
    plain = traces_over(TraceGenerator(webshop(), seed=14, id_seed=1), 100, MS)
    skewed = traces_over(TraceGenerator(webshop(), seed=14, clock_skew_ms=50, id_seed=1), 100, MS)
    offsets: dict[str, set[int]] = defaultdict(set)
    for a_trace, b_trace in zip(plain, skewed, strict=True):
        for a, b in zip(a_trace, b_trace, strict=True):
            assert {**a, "start_time_unix_nano": 0, "end_time_unix_nano": 0} == {
                **b,
                "start_time_unix_nano": 0,
                "end_time_unix_nano": 0,
            }
            shift = b["start_time_unix_nano"] - a["start_time_unix_nano"]
            assert b["end_time_unix_nano"] - a["end_time_unix_nano"] == shift
            offsets[str(a["resource_attributes"]["host.name"])].add(shift)
    assert all(len(shifts) == 1 for shifts in offsets.values())  # fixed per host
    skews = [next(iter(shifts)) for shifts in offsets.values()]
    assert all(abs(skew) <= 50 * MS for skew in skews)
    assert len(set(skews)) == len(skews)  # each host its own


def test_the_assembler_adjusts_skewed_traces_only() -> None:
    def adjusted(generator: TraceGenerator) -> int:
        return sum(
            record(spans)["clock_skew_adjusted"] for spans in traces_over(generator, 200, MS)
        )

    assert adjusted(TraceGenerator(webshop(), seed=15)) == 0
    assert adjusted(TraceGenerator(webshop(), seed=15, clock_skew_ms=50)) > 100


def test_negative_clock_skew_is_refused() -> None:
    with pytest.raises(ConfigError, match="invalid clock_skew_ms -1"):
        TraceGenerator(webshop(), clock_skew_ms=-1)


# --- the pipeline's view ------------------------------------------------------------------------


def test_traces_assemble_cleanly_into_the_expected_service_graph() -> None:
    generator = TraceGenerator(webshop(), seed=16)
    edges: set[tuple[str, str, str]] = set()
    for spans in traces_over(generator, 30, MS, CHECKOUT):
        built = record(spans)
        assert built["warnings"] == []
        assert (built["root_service"], built["root_operation"]) == ("frontend", "POST /checkout")
        assert built["span_count"] == 17
        assert built["depth"] == 6  # frontend, client, checkout, client, cart, redis client
        assert built["critical_path"]
        edges |= {(e.client, e.server, e.connection_type) for e in edges_from_trace(spans)}
    assert edges == {
        ("user", "frontend", "virtual_node"),
        ("frontend", "checkout", ""),
        ("checkout", "cart", ""),
        ("cart", "redis", "database"),
        ("checkout", "payment", ""),
        ("checkout", "shipping", ""),
        ("checkout", "currency", ""),
        ("checkout", "inventory", ""),
        ("inventory", "postgresql", "database"),
        ("checkout", "shipping", "messaging_system"),
    }


def test_every_root_operation_makes_a_well_formed_trace() -> None:
    generator = TraceGenerator(webshop(), seed=17)
    for spans in traces_over(generator, 300, MS):
        built = record(spans)
        assert built["warnings"] == []
        assert built["root_service"] == "frontend"


class CapturingExporter(SpanExporter):  # type: ignore[misc]
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def test_otel_sink_hands_the_same_spans_to_an_exporter() -> None:
    incident = parse_incident("payment:errors=100%")
    spans = TraceGenerator(webshop(), seed=18, incidents=[incident]).trace(T0, CHECKOUT)
    exporter = CapturingExporter()
    otel_sink(exporter)(spans)
    assert len(exporter.spans) == len(spans)
    for span, exported in zip(spans, exporter.spans, strict=True):
        assert span_from_otel(exported) == {**span, "source_format": "otel-sdk"}
    assert any(s["status_code"] == "ERROR" for s in spans)
    assert any(s["links"] for s in spans)


# --- pacing -------------------------------------------------------------------------------------


class FakeClock:
    """now()/sleep() over a virtual clock; `cost_s_per_span` makes the sink take time."""

    def __init__(self, start_s: float = 1000.0, cost_s_per_span: float = 0.0) -> None:
        self.t = start_s
        self.start_s = start_s
        self.cost_s_per_span = cost_s_per_span
        self.batches: list[tuple[float, list[Span]]] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.t += seconds

    def sink(self, spans: list[Span]) -> None:
        self.batches.append((self.t - self.start_s, spans))
        self.t += self.cost_s_per_span * len(spans)

    def spans_per_second(self) -> list[int]:
        counts: Counter[int] = Counter()
        for at_s, spans in self.batches:
            counts[int(at_s)] += len(spans)
        return [counts[k] for k in range(max(counts) + 1)]


def run(
    clock: FakeClock, spans_per_s: float, duration_s: float, seed: int = 1, **kwargs: Any
) -> RunStats:
    generator = TraceGenerator(webshop(), seed=seed)
    return run_at_rate(
        generator,
        clock.sink,
        spans_per_s,
        duration_s,
        now=clock.now,
        sleep=clock.sleep,
        wall_clock_ns=lambda: T0,
        **kwargs,
    )


@pytest.mark.parametrize("cost_s_per_span", [0.0, 40e-6])
def test_pacing_holds_the_rate_each_second(cost_s_per_span: float) -> None:
    clock = FakeClock(cost_s_per_span=cost_s_per_span)
    stats = run(clock, 10_000, 5.0)
    assert 50_000 <= stats.spans < 50_000 + 17
    per_second = clock.spans_per_second()
    assert len(per_second) in (5, 6)  # the last tick falls on 5.0 s
    for count in per_second[:5]:
        assert count == pytest.approx(10_000, rel=0.02)
    assert stats.elapsed_s == pytest.approx(5.0, abs=0.15)
    assert stats.spans_per_s == pytest.approx(10_000, rel=0.03)
    assert stats.behind_s == 0
    assert not stats.interrupted
    # Batches are one tick's worth.
    assert max(len(spans) for _, spans in clock.batches) < 1_100


def test_event_times_advance_at_the_rate() -> None:
    clock = FakeClock()
    run(clock, 2_000, 2.0)
    sent = 0
    for _, spans in clock.batches:
        starts: dict[str, int] = {}
        for span in spans:
            if not span["parent_span_id"]:
                starts[span["trace_id"]] = span["start_time_unix_nano"]
        counts = Counter(s["trace_id"] for s in spans)
        for trace_id, start_ns in starts.items():  # dicts keep the generation order
            assert start_ns == pytest.approx(T0 + sent / 2_000 * 1e9, abs=1_000)
            sent += counts[trace_id]


def test_a_sink_too_slow_for_the_rate_skips_rather_than_bursts() -> None:
    clock = FakeClock(cost_s_per_span=200e-6)  # at most 5,000 spans/s
    stats = run(clock, 10_000, 4.0)
    assert stats.spans_per_s == pytest.approx(5_000, rel=0.05)
    assert stats.behind_s > 0.5  # 4 s at half the rate, less the last second's lag
    assert stats.elapsed_s < 4.0 + 0.25  # the duration bounds the run
    assert "cannot keep up" in stats.progress_line()


def two_runs(seed: int, id_seed: int | None = None) -> tuple[list[Span], list[Span]]:
    """The spans of two runs of one seed, an hour apart."""
    runs = []
    for start_ns in (T0, T0 + 3600 * S):
        clock = FakeClock()
        generator = TraceGenerator(webshop(), seed=seed, id_seed=id_seed)
        start = functools.partial(int, start_ns)
        run_at_rate(
            generator, clock.sink, 1_000, 2.0, now=clock.now, sleep=clock.sleep, wall_clock_ns=start
        )
        runs.append([s for _, spans in clock.batches for s in spans])
    return runs[0], runs[1]


def test_two_runs_with_one_seed_make_the_same_load_with_new_trace_ids() -> None:
    a, b = two_runs(seed=21)
    assert len(a) == len(b) > 1_900
    for x, y in zip(a, b, strict=True):
        assert y["start_time_unix_nano"] - x["start_time_unix_nano"] == 3600 * S
        assert duration_ns(x) == duration_ns(y)
    unclocked = [{"start_time_unix_nano": 0, "end_time_unix_nano": 0}]
    assert [{**x, **unclocked[0]} for x in without_ids([a])] == [
        {**y, **unclocked[0]} for y in without_ids([b])
    ]
    # The pipeline would take a repeated trace id as late spans of the first run's trace.
    assert not {s["trace_id"] for s in a} & {s["trace_id"] for s in b}


def test_an_id_seed_repeats_the_ids_when_asked() -> None:
    a, b = two_runs(seed=21, id_seed=5)
    assert [s["trace_id"] for s in a] == [s["trace_id"] for s in b]
    assert [s["span_id"] for s in a] == [s["span_id"] for s in b]
    _, other = two_runs(seed=21, id_seed=6)
    assert not {s["trace_id"] for s in a} & {s["trace_id"] for s in other}


def test_progress_is_reported_every_interval() -> None:
    clock = FakeClock()
    reports: list[RunStats] = []
    stats = run(clock, 1_000, 10.0, on_progress=reports.append, progress_interval_s=2.0)
    # The last tick is at 9.9 s: the summary, not a progress line, reports the end.
    assert [round(r.elapsed_s) for r in reports] == [2, 4, 6, 8]
    assert reports[0].spans == pytest.approx(2_100, abs=20)  # up to the end of the tick
    assert reports[-1].spans <= stats.spans
    assert "spans/s (target 1,000)" in reports[0].progress_line()
    assert stats.summary().startswith(f"generated {stats.spans:,} spans in {stats.traces:,} traces")


def test_should_stop_and_ctrl_c_end_an_endless_run() -> None:
    clock = FakeClock()
    stats = run(clock, 1_000, 0, should_stop=lambda: clock.t - clock.start_s >= 3.0)
    assert stats.elapsed_s == pytest.approx(3.0, abs=0.11)
    assert not stats.interrupted

    def interrupting_sink(spans: list[Span]) -> None:
        clock.sink(spans)
        if clock.t - clock.start_s >= 1.0:
            raise KeyboardInterrupt

    clock = FakeClock()
    generator = TraceGenerator(webshop(), seed=1)
    stats = run_at_rate(generator, interrupting_sink, 1_000, 0, now=clock.now, sleep=clock.sleep)
    assert stats.interrupted
    assert "interrupted after" in stats.summary()


def test_invalid_rate_or_duration() -> None:
    generator = TraceGenerator(webshop())
    with pytest.raises(ConfigError, match="invalid spans_per_s 0"):
        run_at_rate(generator, lambda spans: None, 0)
    with pytest.raises(ConfigError, match="invalid duration_s -1"):
        run_at_rate(generator, lambda spans: None, 10, -1)
