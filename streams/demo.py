"""`tracepipe demo`: the whole path on one machine: local Kafka, a worker, spans in, counts out."""

from __future__ import annotations

import random
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import KafkaException

from streams.broker.topics import TopicNames, admin_client, ensure_topics
from streams.config import Settings
from streams.errors import TracepipeError
from streams.model.span import Span, make_span
from streams.query import count_spans, quote, worker_running, worker_url
from streams.query.waterfall import trace_report
from streams.sdk import SpanProducer
from streams.warehouse import STATUS_CODE_VALUES
from streams.worker_process import WorkerProcess

_SERVICES = ("frontend", "checkout", "cart", "payment", "shipping", "currency")
RUN_ATTRIBUTE = "tracepipe.demo.run"


def demo_trace(rng: random.Random, spans: int, start_ns: int, run_id: str) -> list[Span]:
    """One synthetic trace: a frontend root and `spans - 1` children spread over services."""
    trace_id = f"{rng.getrandbits(128):032x}"
    ids = [f"{rng.getrandbits(64):016x}" for _ in range(spans)]
    resource = {RUN_ATTRIBUTE: run_id}
    duration_ns = rng.randint(5, 200) * 1_000_000
    out = [
        make_span(
            trace_id,
            ids[0],
            "GET /checkout",
            "frontend",
            start_ns,
            start_ns + duration_ns,
            kind="SERVER",
            resource_attributes={"service.name": "frontend", **resource},
            attributes={"http.request.method": "GET", "http.response.status_code": 200},
        )
    ]
    for i in range(1, spans):
        service = _SERVICES[1 + (i - 1) % (len(_SERVICES) - 1)]
        child_start = start_ns + rng.randint(0, duration_ns // 2)
        child_end = child_start + rng.randint(1, duration_ns // 2)
        error = rng.random() < 0.02
        out.append(
            make_span(
                trace_id,
                ids[i],
                f"{service}.handle",
                service,
                child_start,
                child_end,
                parent_span_id=ids[0],
                kind="SERVER",
                status_code="ERROR" if error else "OK",
                resource_attributes={"service.name": service, **resource},
            )
        )
    return out


def _broker_answers(settings: Settings) -> bool:
    try:
        admin_client(settings.kafka, quiet=True).list_topics(timeout=3)
        return True
    except KafkaException:
        return False


def _ensure_broker(settings: Settings) -> Settings:
    if _broker_answers(settings):
        print(f"kafka: using {settings.kafka.bootstrap}")
        return settings
    from streams.broker.local import LocalKafka

    print(
        f"kafka: nothing answers at {settings.kafka.bootstrap}; starting a local broker "
        f"(Apache Kafka {settings.local_kafka.version} from Maven Central; the first run "
        "downloads it)"
    )
    bootstrap = LocalKafka(settings.local_kafka).up()
    print(f"kafka: running at {bootstrap} (stop it with `tracepipe kafka down`)")
    return settings.replace("kafka", bootstrap=bootstrap)


def run_demo(
    settings: Settings,
    traces: int = 100,
    spans_per_trace: int = 10,
    timeout_s: float = 120.0,
    keep_running: bool = False,
) -> int:
    """Run the demo and print what was produced and what was read back; 0 if they match."""
    settings = _ensure_broker(settings)
    ensure_topics(settings.kafka)
    if worker_running(settings):
        raise TracepipeError(
            f"a worker already answers at {worker_url(settings)}; stop it or set "
            "TRACEPIPE_WORKER_WEB_PORT"
        )
    worker = WorkerProcess(
        {"TRACEPIPE_KAFKA_BOOTSTRAP": settings.kafka.bootstrap},
        Path(settings.worker.data_dir).parent / "worker.log",
    )
    print(f"worker: starting (log {worker.log_path})")
    try:
        worker.start(timeout_s)
        run_id = uuid.uuid4().hex[:12]
        rng = random.Random(run_id)
        topic = TopicNames.from_prefix(settings.kafka.topic_prefix).spans
        now_ns = time.time_ns()
        produced = 0
        with SpanProducer(settings.kafka.bootstrap, topic) as producer:
            for i in range(traces):
                produced += producer.send_many(
                    demo_trace(rng, spans_per_trace, now_ns + i * 1_000_000, run_id)
                )
        print(f"produced: {produced} spans in {traces} traces to {topic} (run {run_id})")
        reader = worker.reader()
        where = f"ResourceAttributes[{quote(RUN_ATTRIBUTE)}] = {quote(run_id)}"
        worker.wait_for(
            lambda: count_spans(reader, where) >= produced,
            timeout_s,
            "the spans to reach otel_traces",
        )
        stored = count_spans(reader, where)
        print(f"stored:   {stored} spans in otel_traces (read back from ClickHouse)")
        error = quote(STATUS_CODE_VALUES["ERROR"])
        per_service = reader.query_dicts(
            f"SELECT ServiceName, count() AS spans, countIf(StatusCode = {error}) AS errors "
            f"FROM otel_traces WHERE {where} GROUP BY ServiceName ORDER BY ServiceName"
        )
        for row in per_service:
            print(f"  {row['ServiceName']:10} {row['spans']:6} spans {row['errors']:4} errors")
        worker.wait_for(
            lambda: (
                int(
                    reader.query_dicts(
                        f"SELECT count() AS n FROM tracepipe_traces WHERE RootService = 'frontend' "
                        f"AND TraceId IN (SELECT TraceId FROM otel_traces WHERE {where})"
                    )[0]["n"]
                )
                >= traces
            ),
            timeout_s,
            "the traces to be assembled",
        )
        slowest = reader.query_dicts(
            "SELECT TraceId FROM tracepipe_traces FINAL WHERE TraceId IN "
            f"(SELECT TraceId FROM otel_traces WHERE {where}) ORDER BY DurationNs DESC LIMIT 1"
        )[0]["TraceId"]
        print(f"assembled: {traces} traces in tracepipe_traces; the slowest:")
        print(trace_report(reader, slowest))
        cli = Path(sys.executable).parent / "tracepipe"
        print(f"query it: {cli} trace {slowest}")
        print(f"          {cli} query spans --service payment")
        print(
            f'          {cli} query sql "SELECT ServiceName, count() FROM otel_traces '
            'GROUP BY ServiceName"'
        )
        return 0 if stored == produced else 1
    finally:
        if keep_running and worker.process is not None:
            print(f"worker: still running (pid {worker.pid}); stop it with kill {worker.pid}")
        elif worker.process is not None:
            worker.stop()
            print("worker: stopped")
