"""The fault suite's harness: a known workload, what the pipeline holds, and the comparison.

Faults stay in the test files (a kill, a broker stop, poison records); everything here is shared
by all of them, and the comparison itself is the plain functions of `result.py`.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

from streams.aggregate.observations import latency_batch, origin_observations
from streams.aggregate.window import window_start
from streams.assemble.graph import edges_from_trace
from streams.assemble.record import build_trace_record, record_span_ids
from streams.broker.topics import TopicNames
from streams.errors import TracepipeError
from streams.generate.generator import TraceGenerator
from streams.generate.incident import parse_incident
from streams.generate.topology import default_topology
from streams.model.codec import AvroCodec
from streams.model.column_codec import columns_from_spans
from streams.model.span import Span
from streams.query import Reader
from streams.sdk import SpanProducer
from streams.sink.spans import DEDUPLICATED_SPANS, OTEL_TRACES
from streams.warehouse import SPAN_KIND_VALUES
from streams.worker_process import WorkerProcess
from tests.integration.isolated import read_messages, read_topic
from tests.reliability.result import (
    EdgeWindowKey,
    FaultResult,
    OriginWindowKey,
    SpanKey,
    SpanTally,
    TraceTally,
    WindowKey,
    WindowTally,
    results_dir,
    save_result,
    tally_spans,
    tally_traces,
    tally_windows,
)

SCALE_ENV = "TRACEPIPE_RELIABILITY_SCALE"

WINDOW_MS = 2000

WORKER_ENV = {
    # Traces close two seconds after their last span, so a run settles in seconds.
    "TRACEPIPE_ASSEMBLY_TRACE_IDLE_MS": "2000",
    "TRACEPIPE_ASSEMBLY_TRACE_MAX_AGE_MS": "30000",
    "TRACEPIPE_ASSEMBLY_SWEEP_INTERVAL_MS": "200",
    # Short windows and idle rule, so the latency windows are final seconds after the last
    # span; half the default lateness (it still covers trace_idle, as edges need).
    "TRACEPIPE_AGGREGATION_WINDOW_MS": str(WINDOW_MS),
    "TRACEPIPE_AGGREGATION_ALLOWED_LATENESS_MS": "15000",
    "TRACEPIPE_AGGREGATION_PARTITION_IDLE_MS": "2000",
}
"""Worker settings every fault runs with."""


def reliability_scale() -> int:
    """How many times the bounded CI workload each fault runs: `$TRACEPIPE_RELIABILITY_SCALE`
    (default 1; e.g. 20 for a long run)."""
    raw = os.environ.get(SCALE_ENV, "1").strip() or "1"
    try:
        scale = int(raw)
    except ValueError:
        scale = 0
    if scale < 1:
        raise TracepipeError(f"{SCALE_ENV}={raw!r} is not a whole number >= 1; unset it for 1")
    return scale


@dataclass(frozen=True)
class Workload:
    """Web-shop traces from `TraceGenerator` with a fixed seed: the spans and their traces."""

    spans: list[Span]
    span_counts: dict[str, int]
    """Spans per trace id."""

    @property
    def keys(self) -> Iterator[SpanKey]:
        """(trace id, span id) of every span."""
        return ((s["trace_id"], s["span_id"]) for s in self.spans)

    def describe(self, extra: str = "", kind: str = "web-shop traces") -> str:
        """The workload as the report's column shows it."""
        text = f"{len(self.span_counts):,} {kind}, {len(self.spans):,} spans"
        return f"{text}, {extra}" if extra else text

    @classmethod
    def of(cls, spans: Sequence[Span]) -> Workload:
        """The workload of these (distinct) spans."""
        return cls(list(spans), dict(Counter(s["trace_id"] for s in spans)))

    def __add__(self, other: Workload) -> Workload:
        """Both workloads as one (e.g. spans made before and after a fault)."""
        return Workload([*self.spans, *other.spans], {**self.span_counts, **other.span_counts})


def webshop_workload(traces: int, seed: int, incidents: Sequence[str] = ()) -> Workload:
    """`traces` traces of the built-in topology, deterministic for `seed`, starting now (spans
    older than the table TTL would be dropped on insert, and older than the allowed lateness
    would be late for their windows), 2 ms apart, with `incidents` (`tracepipe generate`'s
    form, e.g. `inventory:errors=20%`). Make it just before sending it."""
    generator = TraceGenerator(
        default_topology(), seed=seed, incidents=[parse_incident(i) for i in incidents]
    )
    start_ns = time.time_ns()
    spans: list[Span] = []
    counts: dict[str, int] = {}
    for i in range(traces):
        trace = generator.trace(start_ns + i * 2_000_000)
        counts[trace[0]["trace_id"]] = len(trace)
        spans.extend(trace)
    return Workload(spans, counts)


def produce(
    worker: WorkerProcess,
    spans: Sequence[Span],
    batch_max_spans: int = 500,
    batch_max_bytes: int = 512 * 1024,
) -> None:
    """Send `spans` to the worker's spans topic with the SDK producer and wait for delivery.

    The partition count is given rather than read from the broker, so this also works while
    the broker is down (librdkafka holds the messages until it is back)."""
    topic = TopicNames.from_prefix(worker.settings.kafka.topic_prefix).spans
    with SpanProducer(
        worker.settings.kafka.bootstrap,
        topic,
        batch_max_spans=batch_max_spans,
        batch_max_bytes=batch_max_bytes,
        partitions=worker.settings.kafka.partitions,
    ) as producer:
        producer.send_many(spans)
    if producer.failed:
        raise TracepipeError(f"{producer.failed} of {len(spans)} spans were not delivered")


def stored_span_rows(reader: Reader) -> list[SpanKey]:
    """(TraceId, SpanId) of every span row the product's queries read (otel_traces FINAL),
    repeats kept."""
    rows = reader.query_dicts(f"SELECT TraceId, SpanId FROM {DEDUPLICATED_SPANS}")
    return [(r["TraceId"], r["SpanId"]) for r in rows]


def raw_span_rows(reader: Reader) -> int:
    """Every row of otel_traces, copies not merged away yet included (no FINAL)."""
    return int(reader.query_dicts(f"SELECT count() AS n FROM {OTEL_TRACES}")[0]["n"])


def latest_span_counts(reader: Reader) -> dict[str, int]:
    """SpanCount of each trace's latest version, as users read it (tracepipe_traces FINAL)."""
    rows = reader.query_dicts("SELECT TraceId, SpanCount FROM tracepipe_traces FINAL")
    return {r["TraceId"]: int(r["SpanCount"]) for r in rows}


def tally(reader: Reader, workload: Workload) -> tuple[SpanTally, TraceTally]:
    """What the worker holds for `workload`, now."""
    spans = tally_spans(workload.keys, stored_span_rows(reader), raw_span_rows(reader))
    traces = tally_traces(workload.span_counts, latest_span_counts(reader))
    return spans, traces


TraceSummary = tuple[str, int, int, int, int, int, str, str, int, bool, int]
"""A stored trace as users read it: (Completion, SpanCount, DroppedSpanCount, Start, End,
DurationNs, RootService, RootOperation, Depth, ClockSkewAdjusted, ErrorCount)."""

_SUMMARY_SQL = (
    "SELECT TraceId, Completion, SpanCount, DroppedSpanCount, toUnixTimestamp64Nano(Start) AS s, "
    "toUnixTimestamp64Nano(End) AS e, DurationNs, RootService, RootOperation, Depth, "
    "ClockSkewAdjusted, ErrorCount FROM tracepipe_traces FINAL"
)


def stored_trace_summaries(reader: Reader) -> dict[str, TraceSummary]:
    """Every trace's latest version (tracepipe_traces FINAL) as a `TraceSummary`."""
    return {
        r["TraceId"]: (
            r["Completion"],
            int(r["SpanCount"]),
            int(r["DroppedSpanCount"]),
            int(r["s"]),
            int(r["e"]),
            int(r["DurationNs"]),
            r["RootService"],
            r["RootOperation"],
            int(r["Depth"]),
            bool(r["ClockSkewAdjusted"]),
            int(r["ErrorCount"]),
        )
        for r in reader.query_dicts(_SUMMARY_SQL)
    }


def expected_trace_summary(
    spans: list[Span], completion: str = "complete", dropped: int = 0
) -> TraceSummary:
    """What the assembler's own analysis (`build_trace_record`) makes of a trace's spans."""
    r = build_trace_record(
        spans, version=1, completion=completion, emitted_at_unix_nano=0, dropped_span_count=dropped
    )
    return (
        r["completion"],
        r["span_count"],
        r["dropped_span_count"],
        r["start_time_unix_nano"],
        r["end_time_unix_nano"],
        r["duration_ns"],
        r["root_service"],
        r["root_operation"],
        r["depth"],
        r["clock_skew_adjusted"],
        r["error_count"],
    )


def trace_emissions(reader: Reader, trace_ids: Iterable[str]) -> tuple[int, int]:
    """(rows in tracepipe_traces without FINAL, highest Version) over these traces: a trace
    emitted once has one row of version 1."""
    wanted = set(trace_ids)
    rows = reader.query_dicts("SELECT TraceId, Version FROM tracepipe_traces")
    mine = [int(r["Version"]) for r in rows if r["TraceId"] in wanted]
    return len(mine), max(mine, default=0)


def expected_windows(workload: Workload) -> dict[WindowKey, int]:
    """Spans per latency window, from the pipeline's own observation rule
    (`latency_batch`: one per span, keyed by service, operation, kind, status class)."""
    window_ns = WINDOW_MS * 1_000_000
    counts: Counter[WindowKey] = Counter()
    for obs in latency_batch(columns_from_spans(workload.spans)).observations():
        service, operation, kind, status_class = obs.key
        start_ns = window_start(obs.end_time_unix_nano, window_ns)
        counts[service, operation, SPAN_KIND_VALUES.get(kind, kind), status_class, start_ns] += 1
    return dict(counts)


def stored_windows(reader: Reader) -> dict[WindowKey, int]:
    """`Count` of every final latency window as users read it (tracepipe_latency FINAL)."""
    rows = reader.query_dicts(
        "SELECT ServiceName, SpanName, SpanKind, StatusClass, "
        "toUnixTimestamp64Nano(WindowStart) AS start_ns, Count FROM tracepipe_latency FINAL"
    )
    return {
        (r["ServiceName"], r["SpanName"], r["SpanKind"], r["StatusClass"], int(r["start_ns"])): (
            int(r["Count"])
        )
        for r in rows
    }


def expected_edge_windows(workload: Workload) -> dict[EdgeWindowKey, int]:
    """Calls per service-graph window, from the pipeline's own pairing rule
    (`edges_from_trace` over each whole trace, as its first assembled version)."""
    window_ns = WINDOW_MS * 1_000_000
    traces: dict[str, list[Span]] = {}
    for span in workload.spans:
        traces.setdefault(span["trace_id"], []).append(span)
    counts: Counter[EdgeWindowKey] = Counter()
    for spans in traces.values():
        for edge in edges_from_trace(spans):
            start_ns = window_start(edge.end_time_unix_nano, window_ns)
            counts[edge.client, edge.server, edge.connection_type, start_ns] += 1
    return dict(counts)


def stored_edge_windows(reader: Reader) -> dict[EdgeWindowKey, int]:
    """`Count` of every final service-graph window as users read it (tracepipe_edges FINAL)."""
    rows = reader.query_dicts(
        "SELECT Client, Server, ConnectionType, toUnixTimestamp64Nano(WindowStart) AS start_ns, "
        "Count FROM tracepipe_edges FINAL"
    )
    return {
        (r["Client"], r["Server"], r["ConnectionType"], int(r["start_ns"])): int(r["Count"])
        for r in rows
    }


def expected_origin_windows(workload: Workload) -> dict[OriginWindowKey, int]:
    """Traces per error-origin window, from the pipeline's own rule (`origin_observations` of
    each whole trace's record, as its first assembled version)."""
    window_ns = WINDOW_MS * 1_000_000
    traces: dict[str, list[Span]] = {}
    for span in workload.spans:
        traces.setdefault(span["trace_id"], []).append(span)
    records = [
        build_trace_record(spans, version=1, completion="complete", emitted_at_unix_nano=0)
        for spans in traces.values()
        if any(s["status_code"] == "ERROR" for s in spans)
    ]
    counts: Counter[OriginWindowKey] = Counter()
    for obs in origin_observations(records):
        service, operation, origin_service, origin_operation = obs.key
        start_ns = window_start(obs.end_time_unix_nano, window_ns)
        counts[service, operation, origin_service, origin_operation, start_ns] += 1
    return dict(counts)


def stored_origin_windows(reader: Reader) -> dict[OriginWindowKey, int]:
    """`Traces` of every final error-origin window as users read it (FINAL)."""
    rows = reader.query_dicts(
        "SELECT ServiceName, SpanName, OriginService, OriginOperation, "
        "toUnixTimestamp64Nano(WindowStart) AS start_ns, Traces "
        "FROM tracepipe_error_origin_windows FINAL"
    )
    return {
        (r["ServiceName"], r["SpanName"], r["OriginService"], r["OriginOperation"],
         int(r["start_ns"])): int(r["Traces"])
        for r in rows
    }  # fmt: skip


def wait_windows(worker: WorkerProcess, workload: Workload, timeout_s: float) -> WindowTally:
    """The latency windows once every expected one is stored (or the time is up: a window lost
    to a fault never comes, and the tally says so)."""
    expected = expected_windows(workload)
    reader = worker.reader()
    deadline = time.monotonic() + timeout_s
    while True:
        windows = tally_windows(expected, stored_windows(reader))
        if windows.exact == windows.expected or time.monotonic() > deadline:
            break
        time.sleep(1)
    counters = worker.stats()["counters"]
    return replace(
        windows,
        spans_late=sum(counters.get("tracepipe_latency_late_total", {}).values()),
        partials_dropped=sum(counters.get("tracepipe_latency_partials_dropped_total", {}).values()),
    )


def wait_settled(
    worker: WorkerProcess,
    workload: Workload,
    since: float,
    timeout_s: float,
    complete_share: float = 1.0,
) -> float | None:
    """Seconds from `since` (a `time.monotonic()` moment: the fault's end) until every span of
    `workload` is stored and every trace emitted, `complete_share` of them complete; then a
    few more seconds so a late duplicate or straggler shows. None if that never happens."""
    reader = worker.reader()

    def settled() -> bool:
        spans, traces = tally(reader, workload)
        return (
            spans.losses == 0
            and traces.emitted == traces.expected
            and traces.complete >= traces.expected * complete_share
        )

    try:
        worker.wait_for(settled, timeout_s, "every span stored and every trace complete")
    except TracepipeError:
        if worker.process is not None and worker.process.poll() is not None:
            raise
        return None
    recovery_s = time.monotonic() - since
    time.sleep(5)
    return recovery_s


def trace_versions_differing(worker: WorkerProcess, traces: int) -> list[tuple[str, int]]:
    """(trace id, version) pairs published on the traces topic with two different span sets:
    a version may be published twice with the same content (ClickHouse collapses it), never
    with different content."""
    topic = TopicNames.from_prefix(worker.settings.kafka.topic_prefix).traces
    records = read_topic(
        worker.settings.kafka.bootstrap,
        topic,
        AvroCodec("trace"),
        lambda seen: len({r["trace_id"] for r in seen}) >= traces,
    )
    contents: dict[tuple[str, int], set[tuple[str, ...]]] = {}
    for record in records:
        span_ids = tuple(sorted(record_span_ids(record)))  # type: ignore[arg-type]
        contents.setdefault((record["trace_id"], record["version"]), set()).add(span_ids)
    return sorted(pair for pair, seen in contents.items() if len(seen) > 1)


def dead_letters(
    worker: WorkerProcess, expected: int, timeout_s: float = 60.0
) -> list[dict[str, str]]:
    """The headers (decoded) of every record on the worker's DLQ, read until `expected` arrived
    and then a few quiet polls more, so a letter sent twice would show."""
    topic = TopicNames.from_prefix(worker.settings.kafka.topic_prefix).dlq
    messages = read_messages(
        worker.settings.kafka.bootstrap, topic, lambda seen: len(seen) >= expected, timeout_s
    )
    letters = []
    for msg in messages:
        headers = dict(msg.headers() or [])
        letters.append({k: v.decode() for k, v in headers.items() if isinstance(v, bytes)})
    return letters


def record(
    fault: str,
    workload_text: str,
    spans: SpanTally,
    traces: TraceTally,
    recovery_s: float | None,
    *,
    windows: WindowTally | None = None,
    dlq: tuple[int, int, int] | None = None,
    notes: Sequence[str] = (),
) -> FaultResult:
    """Build the fault's result, write it to the results directory, and return it."""
    scale = reliability_scale()
    result = FaultResult(
        # A long run keeps its own file next to CI's bounded one.
        fault=fault if scale == 1 else f"{fault}-x{scale}",
        workload=workload_text,
        spans=spans,
        traces=traces,
        recovery_s=None if recovery_s is None else round(recovery_s, 1),
        windows=windows,
        dlq_expected=None if dlq is None else dlq[0],
        dlq_seen=None if dlq is None else dlq[1],
        dlq_counter=None if dlq is None else dlq[2],
        notes=tuple(notes),
    )
    save_result(result, results_dir())
    return result
