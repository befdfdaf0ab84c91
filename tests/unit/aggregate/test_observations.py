"""Edge observations come from the calls a trace record carries, whatever else it carries; a
record written before trace.v3 (no calls, its spans) is paired on read."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import numpy as np
import pytest

from streams.aggregate.observations import edge_observations, latency_batch
from streams.aggregate.window import Observation, ObservationBatch, WindowAggregator
from streams.assemble.graph import edges_from_trace
from streams.assemble.record import TRACE_SCHEMA, TraceRecord, build_trace_record
from streams.assemble.record_codec import TraceRecordEncoder
from streams.generate.generator import TraceGenerator
from streams.generate.topology import default_topology
from streams.model.codec import AvroCodec, load_schema, schema_fingerprint
from streams.model.column_codec import columns_from_spans
from streams.model.span import Span
from streams.paths import schemas_root

START_NS = 1_700_000_000_000_000_000
CODEC = AvroCodec(TRACE_SCHEMA)


def web_shop_traces(count: int) -> list[list[Span]]:
    generator = TraceGenerator(default_topology(), seed=11, clock_skew_ms=20)
    return [generator.trace(START_NS + i * 1_000_000) for i in range(count)]


def paired(spans: list[Span], new_from: int = 0) -> list[Observation]:
    """What the edge stage observed before records carried calls: the spans paired on read."""
    return [
        Observation(
            e.end_time_unix_nano,
            e.duration_ns,
            (e.client, e.server, e.connection_type),
            e.error,
            e.trace_id,
            e.span_id,
        )
        for e in edges_from_trace(spans, new_from)
    ]


def published(spans: list[Span], include_spans: bool, previous_span_count: int = 0) -> TraceRecord:
    """A record as a consumer of tracepipe.traces decodes it."""
    record = build_trace_record(
        spans,
        version=2 if previous_span_count else 1,
        completion="complete",
        emitted_at_unix_nano=START_NS,
        include_spans=include_spans,
        previous_span_count=previous_span_count,
    )
    decoded: TraceRecord = CODEC.decode(TraceRecordEncoder(CODEC).encode(record), CODEC.fingerprint)
    return decoded


@pytest.mark.parametrize("include_spans", [False, True])
def test_edges_are_the_calls_paired_at_emission_with_or_without_spans(
    include_spans: bool,
) -> None:
    traces = web_shop_traces(50)
    records = [published(spans, include_spans) for spans in traces]
    observed = edge_observations(records)
    assert observed == [o for spans in traces for o in paired(spans)]
    assert len(observed) > 100


def test_a_later_version_observes_only_the_calls_its_new_spans_complete() -> None:
    for spans in web_shop_traces(20):
        cut = len(spans) // 2
        later = published(spans, include_spans=False, previous_span_count=cut)
        assert edge_observations([later]) == paired(spans, cut)


def test_a_record_from_a_writer_before_calls_is_paired_on_read() -> None:
    # A worker not yet upgraded publishes trace.v2 records: spans, no calls.
    released = load_schema(schemas_root() / "avro" / "history" / "trace.v2.avsc")
    traces = web_shop_traces(20)
    records = []
    for spans in traces:
        record = build_trace_record(
            spans, version=1, completion="complete", emitted_at_unix_nano=START_NS
        )
        out = io.BytesIO()
        fastavro.schemaless_writer(out, released, record)
        records.append(CODEC.decode(out.getvalue(), schema_fingerprint(released)))
    assert all(r["calls"] == [] for r in records)
    assert edge_observations(records) == [o for spans in traces for o in paired(spans)]


def span_observations(spans: list[Span]) -> list[Observation]:
    """The latency rule one span at a time: its duration by service, operation, kind, status."""
    def status_class(span: Span) -> str:
        return "error" if span["status_code"] == "ERROR" else "ok"

    return [
        Observation(
            s["end_time_unix_nano"],
            s["end_time_unix_nano"] - s["start_time_unix_nano"],
            (s["service_name"], s["name"], s["kind"], status_class(s)),
            s["status_code"] == "ERROR",
            s["trace_id"],
            s["span_id"],
        )
        for s in spans
    ]


def closed_windows(batches: list[ObservationBatch | list[Observation]]) -> list[tuple[Any, ...]]:
    aggregator = WindowAggregator(1_000, 0, 1, 0.01, 3)
    folded = [aggregator.add(0, batch, 0) for batch in batches]
    closed, _ = aggregator.close_due([0], START_NS + 3_600 * 10**9)
    assert aggregator.take_late() == {}
    return [tuple(f) for f in folded] + [
        (
            w.window_start_unix_nano,
            w.key,
            w.stats.count,
            w.stats.errors,
            w.stats.sum_ns,
            w.stats.min_ns,
            w.stats.max_ns,
            w.stats.sketch.to_record(),
            w.stats.quantile(0.99),
            [e.duration_ns for e in w.stats.exemplars],
            len({(e.trace_id, e.span_id) for e in w.stats.exemplars}),
        )
        for w in closed
    ]


def test_span_columns_fold_as_their_spans_one_by_one_and_a_redelivery_counts_once() -> None:
    spans = [s for trace in web_shop_traces(300) for s in trace]
    spans[5]["status_code"] = "ERROR"
    columns = columns_from_spans(spans)
    batch = latency_batch(columns)
    assert batch.observations() == span_observations(spans)
    one_by_one = closed_windows([span_observations(spans), span_observations(spans[:50])])
    got = closed_windows([batch, latency_batch(columns.select(np.arange(50)))])
    assert got == one_by_one
    # Folded: nothing late, every span of the second batch a duplicate.
    assert got[0][:2] == (0, 0) and got[1][:2] == (0, 50)
    assert sum(w[2] for w in got[2:]) == len(spans)
