"""The benchmark's OTLP encoder: what it writes, streams.ingest.otlp reads back as the same spans,
and requests hold whole traces."""

from __future__ import annotations

from collections import Counter

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.otlp import otlp_request, otlp_requests, set_attributes, whole_traces
from streams.generate.generator import TraceGenerator
from streams.generate.topology import default_topology
from streams.ingest.otlp import spans_from_otlp_proto
from streams.model.span import Span, make_span


def web_shop_spans(traces: int) -> list[Span]:
    generator = TraceGenerator(default_topology(), seed=3, id_seed=3)
    return [s for i in range(traces) for s in generator.trace(1_700_000_000_000_000_000 + i)]


def test_decoding_the_request_gives_the_same_spans() -> None:
    spans = web_shop_spans(20)
    spans[0]["attributes"].update(
        {"ratio": 0.5, "retry": True, "count": -3, "tags": ["a", "b"], "raw": b"\x00\x01"}
    )
    spans[1]["status_code"], spans[1]["status_message"] = "ERROR", "boom"
    decoded = spans_from_otlp_proto(otlp_request(spans))
    key = lambda s: s["span_id"]  # noqa: E731
    expected = [{**s, "source_format": "otlp_proto"} for s in sorted(spans, key=key)]
    assert sorted(decoded, key=key) == expected


def test_events_and_links_survive() -> None:
    span = make_span("ab" * 16, "cd" * 8, "op", "svc", 10, 20)
    span["events"] = [{"time_unix_nano": 15, "name": "retry", "attributes": {"n": 1}}]
    span["links"] = [
        {"trace_id": "ef" * 16, "span_id": "01" * 8, "trace_state": "k=v", "attributes": {}}
    ]
    (decoded,) = spans_from_otlp_proto(otlp_request([span]))
    assert decoded["events"] == span["events"]
    assert decoded["links"] == span["links"]


def test_requests_are_cut_between_traces_only() -> None:
    spans = web_shop_spans(40)
    runs = list(whole_traces(spans, 50))
    assert [s for run in runs for s in run] == spans
    traces_per_run = [{s["trace_id"] for s in run} for run in runs]
    # No trace is split across two runs.
    seen = Counter(t for run in traces_per_run for t in run)
    assert set(seen.values()) == {1}
    sizes = [len(run) for run in runs]
    assert all(size <= 50 or len(ids) == 1 for size, ids in zip(sizes, traces_per_run, strict=True))
    assert len(otlp_requests(spans, 50)) == len(runs)


def test_a_trace_larger_than_a_request_travels_alone() -> None:
    big = [make_span("aa" * 16, f"{i:016x}", "op", "svc", 1, 2) for i in range(5)]
    small = [make_span("bb" * 16, f"{i + 10:016x}", "op", "svc", 1, 2) for i in range(2)]
    assert [len(run) for run in whole_traces(small + big + small[:1], 3)] == [2, 5, 1]


def test_empty_arrays_and_maps_are_sent_as_arrays_and_maps() -> None:
    # An unset oneof is an empty value, which the Collector writes as '' (an empty array: '[]').
    request = ExportTraceServiceRequest()
    attributes = request.resource_spans.add().resource.attributes
    set_attributes(attributes, {"array": [], "map": {}, "nested": [[], {"k": {}}], "empty": None})
    kinds = {pair.key: pair.value.WhichOneof("value") for pair in attributes}
    assert kinds == {
        "array": "array_value",
        "map": "kvlist_value",
        "nested": "array_value",
        "empty": None,
    }
    nested = attributes[2].value.array_value.values
    assert [v.WhichOneof("value") for v in nested] == ["array_value", "kvlist_value"]
    assert nested[1].kvlist_value.values[0].value.WhichOneof("value") == "kvlist_value"
