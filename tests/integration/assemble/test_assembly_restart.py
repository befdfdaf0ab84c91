"""A worker killed with SIGKILL mid-stream and restarted loses no trace: open traces come back
from the assembly table's changelog, and no trace is published twice at the same version."""

from __future__ import annotations

import random
import signal
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from streams.broker.topics import TopicNames, ensure_topics
from streams.model.codec import AvroCodec
from streams.model.span import Span
from streams.query import count_spans
from streams.sdk import SpanProducer
from tests.integration.assemble.test_assembly import SPANS_PER_TRACE, trace_spans
from tests.integration.isolated import isolated_worker

pytestmark = pytest.mark.integration

TRACES = 3_000


@dataclass(frozen=True)
class Kill:
    """When the worker is killed, and the shape of the traffic around it."""

    consumed_share: float
    """Killed once this share of the first half's spans is stored."""
    spans_per_message: int
    trace_idle_ms: int
    sink_batch_max_messages: int


KILLS = {
    # Span batches; killed once the first half is consumed: its last traces are still open.
    "after-first-half": Kill(1.0, 500, 3_000, 500),
    # Not in CI yet: one span per message in small agent batches, killed mid-stream after
    # several commits, `Kill(0.5, 1, 20_000, 20)`. It lost the state of 17 of 3,000 traces in
    # 1 of 4 runs before the span agent waited for its changelog records; since then, in 2 of 9
    # runs the restarted worker stopped consuming one partition without an error (see
    # docs/ARCHITECTURE.md, Guarantees today; issue 8).
}


@pytest.mark.parametrize("kill", KILLS.values(), ids=KILLS.keys())
def test_sigkill_and_restart_lose_no_trace(
    kafka_bootstrap: str, tmp_path: Path, kill: Kill
) -> None:
    worker = isolated_worker(
        kafka_bootstrap,
        tmp_path,
        TRACEPIPE_ASSEMBLY_TRACE_IDLE_MS=str(kill.trace_idle_ms),
        TRACEPIPE_ASSEMBLY_TRACE_MAX_AGE_MS=str(10 * kill.trace_idle_ms),
        TRACEPIPE_ASSEMBLY_SWEEP_INTERVAL_MS="200",
        TRACEPIPE_SINK_BATCH_MAX_MESSAGES=str(kill.sink_batch_max_messages),
    )
    ensure_topics(worker.settings.kafka)
    topic = TopicNames.from_prefix(worker.settings.kafka.topic_prefix).spans
    rng = random.Random(9)
    now_ns = time.time_ns()
    batches: list[list[Span]] = []
    for _ in range(TRACES // 200):
        window = [s for _ in range(200) for s in trace_spans(rng, now_ns)]
        rng.shuffle(window)
        batches.append(window)
    first, second = batches[: len(batches) // 2], batches[len(batches) // 2 :]

    bootstrap = worker.settings.kafka.bootstrap
    worker.start()
    with SpanProducer(bootstrap, topic, batch_max_spans=kill.spans_per_message) as producer:
        for window in first:
            producer.send_many(window)
    reader = worker.reader()
    due = int(sum(len(w) for w in first) * kill.consumed_share)
    worker.wait_for(lambda: count_spans(reader) >= due, 180, f"{due} spans consumed")
    open_before = worker.reader().query_dicts("SELECT count() AS n FROM tracepipe_traces")[0]["n"]
    assert worker.stop(signal.SIGKILL) == -signal.SIGKILL
    assert open_before < len(first) * 200, "nothing was open when the worker was killed"

    with SpanProducer(bootstrap, topic, batch_max_spans=kill.spans_per_message) as producer:
        for window in second:
            producer.send_many(window)
    worker.start()
    reader = worker.reader()

    def summary() -> dict[str, int]:
        return reader.query_dicts(
            "SELECT count() AS traces, countIf(SpanCount = "
            f"{SPANS_PER_TRACE}) AS complete, max(SpanCount) AS max_spans "
            "FROM tracepipe_traces FINAL"
        )[0]

    def spans_stored() -> int:
        return int(
            reader.query_dicts("SELECT uniqExact(TraceId, SpanId) AS n FROM otel_traces")[0]["n"]
        )

    # Every trace, eventually, complete, and every span stored. A trace emitted before all its
    # redelivered spans were back comes again as a higher version (versions may skip, never
    # repeat; next check). Until the span agent waited for its assembly changelog records
    # before acking (AssemblyState.durable), a commit could overtake them and a kill then lost
    # a span's state for good (1-3 traces of 3,000 stayed incomplete in about one run in three).
    def settled() -> bool:
        now = summary()
        return (
            now["traces"] == TRACES
            and now["complete"] == TRACES
            and spans_stored() == TRACES * SPANS_PER_TRACE
        )

    try:
        worker.wait_for(settled, 240, f"{TRACES} complete traces")
        # A few seconds more: a later version missing spans would replace a complete one here.
        time.sleep(5)
        assert summary() == {"traces": TRACES, "complete": TRACES, "max_spans": SPANS_PER_TRACE}
    finally:
        worker.stop()

    # A version is published once, or (when the kill fell between publishing a record and
    # recording that it was published) again with the same content, which ClickHouse collapses:
    # never two different records under one (trace, version).
    codec = AvroCodec("trace")
    consumer = Consumer(
        {
            "bootstrap.servers": worker.settings.kafka.bootstrap,
            "group.id": f"check-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([TopicNames.from_prefix(worker.settings.kafka.topic_prefix).traces])
    contents: dict[tuple[str, int], set[tuple[str, ...]]] = defaultdict(set)
    idle_polls = 0
    while idle_polls < 5:
        msg = consumer.poll(1)
        if msg is None:
            idle_polls += 1
            continue
        record = codec.decode(msg.value() or b"")
        span_ids = tuple(sorted(s["span_id"] for s in record["spans"]))
        contents[(record["trace_id"], record["version"])].add(span_ids)
    consumer.close()
    assert len({trace for trace, _ in contents}) == TRACES
    assert [pair for pair, seen in contents.items() if len(seen) > 1] == []
