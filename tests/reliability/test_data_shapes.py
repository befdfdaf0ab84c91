"""Faults in the data itself (issue 8): spans sent twice, out of order, hours late, with a
service's clock minutes off, one trace of 100,000 spans, a flood of single-span traces.

Each runs a known workload (`tests/reliability/shapes.py`) through an isolated worker (real
broker, real chDB) and compares exactly what is stored with what the documented rules say:
spans by (TraceId, SpanId), traces under FINAL (against the assembler's own analysis of the
spans), the final latency windows (against the pipeline's own observation rule) and the late
counter at /api/stats.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from streams.assemble.skew import adjust_clock_skew
from streams.assemble.structure import analyze_structure
from streams.broker.topics import ensure_topics
from streams.errors import TracepipeError
from streams.model.span import SERVICE_NAME, Span
from streams.worker_process import WorkerProcess
from tests.integration.isolated import isolated_worker
from tests.reliability.harness import (
    WORKER_ENV,
    Workload,
    expected_trace_summary,
    expected_windows,
    latest_span_counts,
    produce,
    record,
    reliability_scale,
    stored_trace_summaries,
    stored_windows,
    tally,
    trace_emissions,
    wait_settled,
    wait_windows,
    webshop_workload,
)
from tests.reliability.result import WindowKey, tally_traces
from tests.reliability.shapes import (
    children_before_parents,
    out_of_order,
    repeated,
    shifted,
    single_span_traces,
    skewed,
    wide_trace,
)

pytestmark = pytest.mark.integration

TRACES = 300
SENDS = 5
MINUTE_NS = 60 * 1_000_000_000
MIB = 1024 * 1024


def started_worker(kafka_bootstrap: str, tmp_path: Path, **env: str) -> WorkerProcess:
    """An isolated worker with the suite's settings (and `env` over them), started."""
    worker = isolated_worker(kafka_bootstrap, tmp_path, **{**WORKER_ENV, **env})
    ensure_topics(worker.settings.kafka)
    worker.start()
    return worker


@pytest.fixture
def worker(kafka_bootstrap: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A worker with the suite's settings."""
    proc = started_worker(kafka_bootstrap, tmp_path)
    try:
        yield proc
    finally:
        proc.stop()


def late_total(worker: WorkerProcess) -> int:
    """tracepipe_latency_late_total over every service, from /api/stats."""
    counters = worker.stats()["counters"]
    return int(sum(counters.get("tracepipe_latency_late_total", {}).values()))


def warm_up(worker: WorkerProcess, seed: int) -> Workload:
    """On-time traces whose windows are final once this returns: every partition's watermark
    then stands at wall clock minus the allowed lateness, so what is late from here on is
    decided by event time alone, not by when the first emit tick ran."""
    workload = webshop_workload(50, seed=seed)
    produce(worker, workload.spans)
    windows = wait_windows(worker, workload, 90)
    assert (windows.exact, windows.spans_late) == (windows.expected, 0), windows
    return workload


def test_duplicate_spans(worker: WorkerProcess) -> None:
    """The same span sent twice (inside one batch, in a later batch, a whole batch retried)
    is one span of its trace, re-opens nothing, and counts once in its latency window."""
    workload = webshop_workload(TRACES * reliability_scale(), seed=31)
    at_once, later = repeated(workload.spans, every=5, seed=31)
    retried = workload.spans[:500]  # one span batch, sent again as a retrying SDK would
    reader = worker.reader()
    produce(worker, at_once)
    # Every trace emitted first, so the later repeats find emitted (retained) traces.
    worker.wait_for(
        lambda: tally(reader, workload)[1].emitted == len(workload.span_counts),
        120,
        "every trace emitted",
    )
    sent_again = time.monotonic()
    produce(worker, later)
    produce(worker, retried)
    recovery_s = wait_settled(worker, workload, sent_again, 120)
    spans, traces = tally(reader, workload)
    windows = wait_windows(worker, workload, 60)
    rows, top_version = trace_emissions(reader, workload.span_counts)
    sent = len(at_once) + len(later) + len(retried)
    repeats = sent - len(workload.spans)
    result = record(
        "duplicate-spans",
        workload.describe(f"{repeats:,} repeats (every 5th span sent twice, a batch of 500 again)"),
        spans,
        traces,
        recovery_s,
        windows=windows,
        notes=[
            f"{sent:,} spans sent for {len(workload.spans):,}: the product's queries return "
            f"{spans.rows:,} rows for {spans.distinct:,} spans (otel_traces FINAL); each trace "
            "holds every span once",
            f"tracepipe_traces: {rows:,} rows for {traces.expected:,} traces, highest version "
            f"{top_version} (a repeat of an emitted trace's span re-opens nothing)",
            "latency windows count each span once: a window folds an identical observation "
            "once (WindowAggregator keeps a hash per folded observation)",
        ],
    )
    assert (spans.losses, spans.unexpected, spans.duplicates) == (0, 0, 0), result
    assert traces.complete == traces.expected, result
    assert (rows, top_version) == (traces.expected, 1), result
    assert windows.exact == windows.expected, result
    assert windows.spans_counted == windows.spans_expected == len(workload.spans), result
    assert windows.spans_late == 0, result


def test_out_of_order_spans(worker: WorkerProcess) -> None:
    """Children before parents, traces interleaved and spread over four sends: every trace is
    stored as the assembler's analysis of the in-order spans says, and windows are exact."""
    workload = webshop_workload(TRACES * reliability_scale(), seed=32)
    shuffled = out_of_order(workload.spans, seed=32)
    quarter = len(shuffled) // 4 + 1
    for start in range(0, len(shuffled), quarter):
        produce(worker, shuffled[start : start + quarter])
        time.sleep(0.3)
    sent = time.monotonic()
    reader = worker.reader()
    recovery_s = wait_settled(worker, workload, sent, 120)
    spans, traces = tally(reader, workload)
    windows = wait_windows(worker, workload, 60)
    stored = stored_trace_summaries(reader)
    differing = sorted(
        t
        for t, ss in by_trace(workload.spans).items()
        if stored.get(t) != expected_trace_summary(ss)
    )
    result = record(
        "out-of-order-spans",
        workload.describe(
            f"children before parents ({children_before_parents(shuffled):,} parents after a "
            "child), traces interleaved, four sends"
        ),
        spans,
        traces,
        recovery_s,
        windows=windows,
        notes=[
            f"{len(differing)} traces whose stored summary (completion, counts, bounds, root, "
            "depth, skew flag) differs from build_trace_record of the in-order spans"
            + (f": {differing[:5]}" if differing else "")
        ],
    )
    assert (spans.losses, spans.unexpected, spans.duplicates) == (0, 0, 0), result
    assert traces.complete == traces.expected, result
    assert differing == [], result
    assert windows.exact == windows.expected and windows.spans_late == 0, result


def test_spans_hours_late(worker: WorkerProcess) -> None:
    """Traces whose event times are three hours old, sent now among on-time ones: stored and
    assembled like any other, and late for the latency windows (counted, not folded in)."""
    scale = reliability_scale()
    first = warm_up(worker, seed=33)
    on_time = webshop_workload(TRACES * scale // 2, seed=34)
    old = Workload.of(
        shifted(webshop_workload(TRACES * scale // 2, seed=35).spans, -180 * MINUTE_NS)
    )
    mixed = [s for pair in zip(on_time.spans, old.spans, strict=False) for s in pair]
    mixed += on_time.spans[len(old.spans) :] + old.spans[len(on_time.spans) :]
    produce(worker, mixed)
    sent = time.monotonic()
    reader = worker.reader()
    workload = first + on_time + old
    recovery_s = wait_settled(worker, workload, sent, 120)
    spans, traces = tally(reader, workload)
    windows = wait_windows(worker, first + on_time, 60)
    stored = stored_windows(reader)
    expected = expected_windows(first + on_time)
    result = record(
        "spans-hours-late",
        workload.describe(f"{len(old.spans):,} of the spans 3 h old, sent after a warm-up"),
        spans,
        traces,
        recovery_s,
        windows=windows,
        notes=[
            f"{windows.spans_late:,} spans counted late (tracepipe_latency_late_total) for "
            f"{len(old.spans):,} spans 3 h old; {len(stored) - len(expected)} windows stored "
            "beyond the on-time spans' (the windows count the warm-up and on-time spans)",
        ],
    )
    assert (spans.losses, spans.unexpected, spans.duplicates) == (0, 0, 0), result
    assert traces.complete == traces.expected, result
    assert stored == expected, result
    assert windows.spans_late == len(old.spans), result


def test_clock_skew_of_minutes(worker: WorkerProcess) -> None:
    """payment's clock 3 min ahead, inventory's 3 min behind: every trace complete with the
    skew adjusted away (each shifted child within its parent, the trace's bounds those of the
    true times); windows keyed by the reported end times: inventory's late (counted exactly),
    payment's held open until wall clock reaches them, everyone else's exact."""
    offsets = {"payment": 3 * MINUTE_NS, "inventory": -3 * MINUTE_NS}
    first = warm_up(worker, seed=36)
    # Five sends 1.5 s apart (longer than the emit interval), as services send all the time:
    # a watermark carried ahead by payment's clock would make the later sends' spans late.
    true = Workload([], {})
    sent_spans: list[Span] = []
    for send in range(SENDS):
        batch = webshop_workload(TRACES * reliability_scale() // SENDS, seed=37 + send)
        produce(worker, skewed(batch.spans, offsets))
        true += batch
        sent_spans += skewed(batch.spans, offsets)
        time.sleep(1.5)
    workload = first + Workload.of(sent_spans)
    sent = time.monotonic()
    reader = worker.reader()
    recovery_s = wait_settled(worker, workload, sent, 120)
    spans, traces = tally(reader, workload)
    unskewed = Workload.of([s for s in sent_spans if s["service_name"] not in offsets])
    windows = wait_windows(worker, first + unskewed, 60)
    stored = stored_windows(reader)
    expected = expected_windows(first + unskewed)
    behind = sum(1 for s in sent_spans if s["service_name"] == "inventory")
    ahead = sum(1 for s in sent_spans if s["service_name"] == "payment")

    skewed_traces = by_trace(sent_spans)
    true_traces = by_trace(true.spans)
    summaries = stored_trace_summaries(reader)
    differing = sorted(
        t for t, ss in skewed_traces.items() if summaries.get(t) != expected_trace_summary(ss)
    )
    # The adjusted extent is the true one: (Start, End, DurationNs) of the unskewed spans.
    bounds_off = sorted(
        t
        for t, ss in true_traces.items()
        if summaries.get(t, ())[3:6] != expected_trace_summary(ss)[3:6]
    )
    adjusted = sum(1 for t in skewed_traces if summaries.get(t, ())[9:10] == (True,))
    outside = children_outside_parents(skewed_traces.values(), set(offsets))
    ahead_note = "not final yet at the end (wall clock has not reached them)"
    final_windows: dict[WindowKey, int] | None = None
    expected_final = expected
    if reliability_scale() > 1:
        # A long run also waits for payment's windows: final once wall clock has passed them.
        not_behind = Workload.of([s for s in sent_spans if s["service_name"] != "inventory"])
        windows = wait_windows(worker, first + not_behind, 330)
        final_windows = stored_windows(reader)
        expected_final = expected_windows(first + not_behind)
        ahead_note = f"waited for: {len(final_windows) - len(expected)} more windows stored"
    result = record(
        "clock-skew",
        workload.describe("payment's clock +3 min, inventory's -3 min, 5 sends, after a warm-up"),
        spans,
        traces,
        recovery_s,
        windows=windows,
        notes=[
            f"{adjusted:,} traces skew-adjusted; {len(differing)} stored summaries differ from "
            f"build_trace_record of the stored spans; {len(bounds_off)} traces whose bounds "
            f"differ from the true times'; {outside} shifted children outside their parents",
            f"{windows.spans_late:,} spans late for {behind:,} inventory spans 3 min behind; "
            f"{ahead:,} payment spans 3 min ahead, their windows {ahead_note}; "
            f"{len(stored) - len(expected)} windows stored beyond the other services' when "
            "those were final",
        ],
    )
    assert (spans.losses, spans.unexpected, spans.duplicates) == (0, 0, 0), result
    assert traces.complete == traces.expected, result
    assert differing == [] and bounds_off == [] and outside == 0, result
    assert adjusted > 0, result
    assert stored == expected, result
    assert windows.spans_late == behind, result
    if final_windows is not None:
        assert final_windows == expected_final, result


def by_trace(spans: list[Span]) -> dict[str, list[Span]]:
    """The spans grouped by trace id, in their order."""
    out: dict[str, list[Span]] = {}
    for span in spans:
        out.setdefault(span["trace_id"], []).append(span)
    return out


def children_outside_parents(traces: Iterable[list[Span]], services: set[str]) -> int:
    """Spans of `services` called from another service that the skew adjustment (as the
    assembler and the trace view apply it) leaves outside their parent."""
    outside = 0
    for spans in traces:
        structure = analyze_structure(spans)
        adjustment = adjust_clock_skew(structure)
        start, end = adjustment.start_ns, adjustment.end_ns
        for i, span in enumerate(structure.spans):
            p = structure.parent[i]
            if p < 0 or span[SERVICE_NAME] not in services:
                continue
            if structure.spans[p][SERVICE_NAME] == span[SERVICE_NAME]:
                continue
            if not (start[p] <= start[i] and end[i] <= end[p]):
                outside += 1
    return outside


@dataclass
class Peaks:
    """The highest readings of a worker while it works through a workload."""

    rss_bytes: int = 0
    open_traces: int = 0
    retained_traces: int = 0
    tombstones: int = 0

    def sample(self, worker: WorkerProcess) -> None:
        """Read the worker's RSS and assembler gauges now."""
        self.rss_bytes = max(self.rss_bytes, worker.rss_bytes())
        gauges = worker.stats()["assembly"]
        self.open_traces = max(self.open_traces, gauges["open_traces"])
        self.retained_traces = max(self.retained_traces, gauges["retained_traces"])
        self.tombstones = max(self.tombstones, gauges["tombstones"])


def settle_sampling(
    worker: WorkerProcess, workload: Workload, expected_counts: dict[str, int], peaks: Peaks
) -> float | None:
    """Like `wait_settled` with the expected span count of each trace's latest version given,
    sampling `peaks` meanwhile; seconds until settled, or None."""
    reader = worker.reader()
    since = time.monotonic()

    def settled() -> bool:
        peaks.sample(worker)
        spans = tally(reader, workload)[0]
        traces = tally_traces(expected_counts, latest_span_counts(reader))
        return spans.losses == 0 and traces.complete == traces.expected

    try:
        worker.wait_for(settled, 300, "every span stored and every trace emitted as expected")
    except TracepipeError:
        return None
    recovery_s = time.monotonic() - since
    time.sleep(5)
    peaks.sample(worker)
    return recovery_s


def test_a_trace_of_100000_spans(worker: WorkerProcess) -> None:
    """One trace of 100,000 spans among ordinary traffic: every span stored and counted in its
    window; the trace emitted complete with the first assembly.max_spans_per_trace spans held
    and the rest counted as dropped; the traces sent after it complete too."""
    scale = reliability_scale()
    cap = worker.settings.assembly.max_spans_per_trace
    before = webshop_workload(TRACES * scale // 2, seed=38)
    wide = Workload.of(wide_trace(100_000, time.time_ns(), fan_out=100, seed=38))
    after = webshop_workload(TRACES * scale // 2, seed=39)
    workload = before + wide + after
    (wide_id,) = wide.span_counts
    peaks = Peaks()
    peaks.sample(worker)
    rss_before = peaks.rss_bytes
    produce(worker, before.spans + wide.spans)
    produce(worker, after.spans)
    # The wide trace's latest version holds the cap; every other trace all its spans.
    expected_counts = {**workload.span_counts, wide_id: min(cap, len(wide.spans))}
    recovery_s = settle_sampling(worker, workload, expected_counts, peaks)
    reader = worker.reader()
    spans = tally(reader, workload)[0]
    traces = tally_traces(expected_counts, latest_span_counts(reader))
    windows = wait_windows(worker, workload, 90)
    summary = stored_trace_summaries(reader).get(wide_id)
    want = expected_trace_summary(wide.spans[:cap], dropped=len(wide.spans) - cap)
    rows, top_version = trace_emissions(reader, [wide_id])
    counters = worker.stats()["counters"]
    without_spans = sum(counters.get("tracepipe_trace_records_without_spans_total", {}).values())
    result = record(
        "trace-of-100000-spans",
        workload.describe(
            f"one of 100,000 spans among 300 web-shop ones (max_spans_per_trace {cap:,})", "traces"
        ),
        spans,
        traces,
        recovery_s,
        windows=windows,
        notes=[
            f"the wide trace's latest version (v{top_version}, {rows} rows): {summary} "
            "(completion, spans held, dropped, start, end, duration, root, depth, skew, errors); "
            f"expected the first {cap:,} spans held and {len(wide.spans) - cap:,} dropped; "
            f"{without_spans} trace records cut to span ids for size (records carry span ids, "
            "not spans, unless assembly.include_spans: the wide one fits TRACE_RECORD_MAX_BYTES)",
            f"RSS {rss_before / MIB:.0f} MiB before, {peaks.rss_bytes / MIB:.0f} MiB at most "
            f"while it was worked through; {peaks.open_traces:,} open traces at most",
        ],
    )
    assert (spans.losses, spans.unexpected, spans.duplicates) == (0, 0, 0), result
    assert traces.complete == traces.expected, result
    assert summary == want, result
    # Records carry span ids and calls, not spans: even 10,000 of them fit one record.
    assert without_spans == 0, result
    assert windows.exact == windows.expected and windows.spans_late == 0, result


def test_a_flood_of_single_span_traces(kafka_bootstrap: str, tmp_path: Path) -> None:
    """20,000 one-span traces at once, assembly capped low (1,000 open, 2,000 retained, 4,000
    tombstones): every trace emitted once and complete (early, as `evicted`, when the open cap
    binds), the assembler's gauges within their caps, windows exact."""
    caps = {"open_traces": 1_000, "retained_traces": 2_000, "tombstones": 4_000}
    worker = started_worker(
        kafka_bootstrap,
        tmp_path,
        TRACEPIPE_ASSEMBLY_MAX_OPEN_TRACES=str(caps["open_traces"]),
        TRACEPIPE_ASSEMBLY_MAX_RETAINED_TRACES=str(caps["retained_traces"]),
        TRACEPIPE_ASSEMBLY_MAX_TOMBSTONES=str(caps["tombstones"]),
    )
    try:
        flood = Workload.of(single_span_traces(20_000 * reliability_scale(), time.time_ns(), 40))
        peaks = Peaks()
        peaks.sample(worker)
        rss_before = peaks.rss_bytes
        produce(worker, flood.spans)
        recovery_s = settle_sampling(worker, flood, flood.span_counts, peaks)
        reader = worker.reader()
        spans, traces = tally(reader, flood)
        windows = wait_windows(worker, flood, 60)
        rows, top_version = trace_emissions(reader, flood.span_counts)
        completions = Counter(s[0] for s in stored_trace_summaries(reader).values())
    finally:
        worker.stop()
    result = record(
        "single-span-flood",
        flood.describe("all sent at once; assembly capped at 1,000 open traces", "one-span traces"),
        spans,
        traces,
        recovery_s,
        windows=windows,
        notes=[
            f"tracepipe_traces: {rows:,} rows for {traces.expected:,} traces, highest version "
            f"{top_version}; completions {dict(sorted(completions.items()))}",
            f"assembler at most {peaks.open_traces:,} open / {peaks.retained_traces:,} retained "
            f"/ {peaks.tombstones:,} tombstones (caps {caps['open_traces']:,} / "
            f"{caps['retained_traces']:,} / {caps['tombstones']:,}); RSS "
            f"{rss_before / MIB:.0f} MiB before, {peaks.rss_bytes / MIB:.0f} MiB at most",
        ],
    )
    assert (spans.losses, spans.unexpected, spans.duplicates) == (0, 0, 0), result
    assert traces.complete == traces.expected, result
    assert (rows, top_version) == (traces.expected, 1), result
    assert peaks.open_traces <= caps["open_traces"], result
    assert peaks.retained_traces <= caps["retained_traces"], result
    assert peaks.tombstones <= caps["tombstones"], result
    # Each span counted once, in its window or as late. Late only once the worker is further
    # behind wall clock than the allowed lateness (a long run: docs/RELIABILITY.md), never at
    # the CI size.
    assert windows.spans_counted + windows.spans_late == windows.spans_expected, result
    if reliability_scale() == 1:
        assert windows.exact == windows.expected and windows.spans_late == 0, result
