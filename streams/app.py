"""The Faust application: built by `create_app(settings)` with a deliberate, stable app id."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import faust
from faust.web import Request, Response, View
from mode import BaseSignalT

from streams.aggregate.agent import AggregationStage, Signal, register_aggregation
from streams.aggregate.observations import (
    EDGE_DIMENSIONS,
    LATENCY_DIMENSIONS,
    edge_observations,
    latency_observations,
)
from streams.alert.agent import AlertStage
from streams.alert.delivery import register_alert_delivery
from streams.assemble.agent import AssemblyState, register_assembly
from streams.assemble.record import TraceRecord
from streams.assemble.stage import AssemblyStage
from streams.batch_agent import MessagesByPartition, current_generation
from streams.broker.topics import TopicNames, ensure_topics
from streams.config import Settings
from streams.errors import TracepipeError
from streams.health import (
    LIVENESS_PATH,
    READINESS_PATH,
    GroupState,
    Readiness,
    WarehouseCheck,
    readiness,
    readiness_change,
)
from streams.ingest.agent import register_bridge
from streams.query.web import Page
from streams.query.web.graph import graph_page
from streams.query.web.markup import message_page
from streams.query.web.search import search_page
from streams.query.web.services import services_page
from streams.query.web.trace import trace_page
from streams.sink.agent import SpansByPartition, register_span_sink
from streams.sink.windows import (
    EDGES,
    EDGES_COLUMNS,
    LATENCY,
    LATENCY_COLUMNS,
    edge_row,
    latency_row,
)
from streams.sink.writer import WarehouseWriter
from streams.stacks import dump_task_stacks
from streams.telemetry import Counters
from streams.warehouse import Warehouse, open_warehouse
from streams.warehouse.migrate import migrate

log = logging.getLogger("tracepipe.app")

# Read-only statements the worker's query endpoint runs on behalf of the CLI.
_READ_ONLY = re.compile(r"^\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXISTS|EXPLAIN)\b", re.IGNORECASE)


@dataclass
class Pipeline:
    """The running app and what its agents share: topics, counters, the warehouse writer."""

    app: faust.App
    settings: Settings
    topics: TopicNames
    counters: Counters
    writer: WarehouseWriter
    assembly: AssemblyStage
    aggregation: tuple[AggregationStage, ...] = ()


def broker_urls(bootstrap: str) -> list[str]:
    """Faust broker URLs for a `host:port[,host:port]` bootstrap list."""
    return [f"kafka://{hp.strip()}" for hp in bootstrap.split(",") if hp.strip()]


def raw_topic(app: faust.App, name: str, allow_empty: bool = False) -> faust.TopicT:
    """A topic whose keys and values the stages encode and decode themselves (Avro, bytes)."""
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        allow_empty=allow_empty,
    )


def _open_migrated(settings: Settings) -> Warehouse:
    warehouse = open_warehouse(settings.clickhouse)
    try:
        applied = migrate(warehouse, settings.clickhouse.ttl_days)
    except BaseException:
        # The writer opens again on its next attempt: don't leak this connection (or chDB
        # session) once per retry while ClickHouse is failing.
        warehouse.close()
        raise
    if applied:
        log.info("applied ClickHouse migrations %s", ", ".join(applied))
    return warehouse


def faust_app(settings: Settings) -> faust.App:
    """The Faust app of `settings` (id, broker, state, web server), with no agents yet."""
    return faust.App(
        settings.worker.app_id,
        broker=broker_urls(settings.kafka.bootstrap),
        datadir=settings.worker.data_dir,
        store="memory://",
        topic_partitions=settings.kafka.partitions,
        topic_replication_factor=settings.kafka.replication_factor,
        consumer_auto_offset_reset="earliest",
        # Every tracepipe topic and table carries bytes it encodes itself (Avro, state).
        key_serializer="raw",
        value_serializer="raw",
        producer_acks=-1,
        # Changelog and trace records are many small sends: Faust's defaults (16 KiB batches,
        # no linger) turn them into thousands of produce requests a second.
        producer_max_batch_size=512 * 1024,
        producer_linger=0.005,
        web_host=settings.worker.web_host,
        web_port=settings.worker.web_port,
        web_in_thread=False,
        # The span sink keeps uncommitted batches unacked on shutdown; don't wait for them.
        stream_wait_empty=False,
        # Backpressure: what a stalled agent (e.g. ClickHouse down) lets the consumer read ahead.
        # Faust pauses a partition once its stream buffer is full; aiokafka fetches at most this
        # much per partition. Together they bound the memory lag can take (docs/ARCHITECTURE.md).
        stream_buffer_maxsize=settings.worker.stream_buffer_maxsize,
        consumer_max_fetch_size=settings.worker.consumer_max_fetch_bytes,
        # How soon the group moves on from a worker that died (SIGKILL, OOM): see WorkerConfig.
        broker_session_timeout=settings.worker.session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.worker.heartbeat_interval_ms / 1000,
    )


def hold_streams_until_seeked(app: faust.App) -> None:
    """Stop fetching for the agents from the end of table recovery until the stream partitions
    are back at their committed offsets (faust-streaming 0.15's recovery fetches meanwhile)."""

    # After every rebalance (so at each start) Faust's recovery resumes the stream partitions,
    # awaits a seek to their committed offsets with fetching on, and only then resumes flow
    # control, which clears every agent's stream buffer. Records fetched during the seek have
    # moved the consumer's read offset on: they are cleared unprocessed and the seek's refetch
    # skips them as already read, so they are never acknowledged. Faust's commit stops at such
    # a hole for good when it is two messages or more (a restarted worker's spans partitions
    # froze 85 messages in, docs/ARCHITECTURE.md) and commits past a single one. Recovery sends
    # `on_rebalance_complete` just before that resume and seek; its own `resume_flow`, after
    # the clear, restarts fetching from the committed offsets.
    def stop_flow_for_seek(
        sender: faust.App, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any
    ) -> None:
        sender.consumer.stop_flow()

    app.on_rebalance_complete.connect(stop_flow_for_seek)


def create_app(settings: Settings) -> Pipeline:
    """Build the Faust app and register every stage's agents; nothing connects until it runs."""
    app = faust_app(settings)
    hold_streams_until_seeked(app)
    topics = TopicNames.from_prefix(settings.kafka.topic_prefix)
    counters = Counters()
    writer = WarehouseWriter(lambda: _open_migrated(settings), settings.sink, counters)
    assembly = AssemblyStage(settings.assembly, settings.sampling, time.time_ns)

    spans_topic = raw_topic(app, topics.spans, allow_empty=True)
    dlq_topic = raw_topic(app, topics.dlq)
    otlp_topic = raw_topic(app, topics.otlp, allow_empty=True)
    zipkin_topic = raw_topic(app, topics.zipkin, allow_empty=True)
    register_bridge(
        app,
        otlp_topic,
        zipkin_topic,
        spans_topic,
        dlq_topic,
        settings.ingest,
        counters,
        settings.kafka.partitions,
    )
    state = AssemblyState(app, assembly, settings.kafka.partitions, topics.spans)
    traces_topic = raw_topic(app, topics.traces)
    latency = AggregationStage(
        Signal(
            name="latency",
            dimensions=LATENCY_DIMENSIONS,
            source_topic=topics.spans,
            partials_topic=raw_topic(app, topics.latency_partials),
            output_topic=raw_topic(app, topics.latency),
            output_schema="latency",
            table=LATENCY,
            columns=LATENCY_COLUMNS,
            row=latency_row,
        ),
        settings.aggregation,
        settings.kafka.partitions,
        counters,
        time.time_ns,
        partial(current_generation, app),
    )
    edges = AggregationStage(
        Signal(
            name="edges",
            dimensions=EDGE_DIMENSIONS,
            source_topic=topics.traces,
            partials_topic=raw_topic(app, topics.edge_partials),
            output_topic=raw_topic(app, topics.edges),
            output_schema="edge",
            table=EDGES,
            columns=EDGES_COLUMNS,
            row=edge_row,
        ),
        settings.aggregation,
        settings.kafka.partitions,
        counters,
        time.time_ns,
        partial(current_generation, app),
    )

    def assemble(batch: SpansByPartition, messages: MessagesByPartition) -> None:
        state.add([span for spans in batch.values() for span in spans])

    def observe_spans(batch: SpansByPartition, messages: MessagesByPartition) -> None:
        for partition, partition_messages in messages.items():
            spans = batch.get(partition, [])
            latency.observe(partition, latency_observations(spans), partition_messages)

    def observe_traces(batch: dict[int, list[TraceRecord]], messages: MessagesByPartition) -> None:
        for partition, partition_messages in messages.items():
            records = batch.get(partition, [])
            edges.observe(partition, edge_observations(records), partition_messages)

    register_span_sink(
        app,
        spans_topic,
        dlq_topic,
        writer,
        settings.sink,
        settings.ingest,
        counters,
        on_spans=(assemble, observe_spans),
        store_spans=not settings.sampling.enabled,
        before_ack=(state.durable,),
    )
    register_assembly(
        app, assembly, traces_topic, writer, counters, state, on_traces=(observe_traces,)
    )
    alerts_topic = raw_topic(app, topics.alerts)
    alerting = AlertStage(
        app,
        alerts_topic,
        writer,
        settings.alert,
        settings.aggregation,
        settings.kafka.partitions,
        counters,
        time.time_ns,
    )
    register_aggregation(app, latency, writer, counters, on_final=(alerting.on_final_windows,))
    register_aggregation(app, edges, writer, counters)
    register_alert_delivery(
        app,
        alerts_topic,
        dlq_topic,
        writer,
        settings.alert,
        counters,
        external_url=f"http://{settings.worker.web_host}:{settings.worker.web_port}",
    )
    pipeline = Pipeline(app, settings, topics, counters, writer, assembly, (latency, edges))
    _register_web(pipeline)
    _register_health(pipeline)
    return pipeline


def _register_web(pipeline: Pipeline) -> None:
    app, counters, writer = pipeline.app, pipeline.counters, pipeline.writer

    @app.page("/metrics")
    async def metrics(view: View, request: Request) -> Response:
        return view.text(counters.render_prometheus())

    @app.page("/api/stats")
    async def stats(view: View, request: Request) -> Response:
        app_id = pipeline.settings.worker.app_id
        assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in app.assignor.assigned_actives())
        buffer = pipeline.assembly.buffer
        # Gauges, not counters: what the assembler holds now (memory per held trace in bench).
        assembly = {
            "open_traces": buffer.open_trace_count,
            "retained_traces": buffer.retained_trace_count,
            "tombstones": buffer.tombstone_count,
        }
        aggregation = {stage.signal.name: stage.gauges() for stage in pipeline.aggregation}
        return view.json(
            {
                "app_id": app_id,
                "assigned": assigned,
                "counters": counters.snapshot(),
                "assembly": assembly,
                "aggregation": aggregation,
            }
        )

    @app.page("/api/query")
    class QueryView(View):
        """Runs one read-only SQL statement on the worker's ClickHouse (the CLI's way in)."""

        async def post(self, request: Request) -> Response:
            body: dict[str, Any] = await request.json()
            sql = str(body.get("sql", ""))
            if not _READ_ONLY.match(sql):
                return self.json({"error": "only read-only statements are served"}, status=400)
            try:
                rows = await writer.run_on_writer(lambda w: w.query_dicts(sql))
            except Exception as err:  # the client gets the engine's message
                return self.json({"error": str(err)}, status=400)
            payload = json.dumps({"rows": rows}, default=str).encode()
            return self.bytes(payload, content_type="application/json")

    del metrics, stats, QueryView
    _register_ui(pipeline)


def _register_ui(pipeline: Pipeline) -> None:
    """The trace web view under /ui/: each page is built on the writer thread (chDB lives there)."""
    app, writer, settings = pipeline.app, pipeline.writer, pipeline.settings

    async def serve(view: View, build: Callable[[Warehouse], Page]) -> Response:
        try:
            page: Page = await writer.run_on_writer(build)
        except TracepipeError as err:  # the engine's message, e.g. "run tracepipe db migrate"
            log.warning("web view query failed: %s", err)
            page = message_page(500, "The query failed", str(err))
        return view.html(page.html, status=page.status)

    @app.page("/ui/", name="ui-search")
    async def search(view: View, request: Request) -> Response:
        params = dict(request.query)
        return await serve(view, lambda w: search_page(w, params, time.time_ns(), settings))

    @app.page("/ui/trace/{trace_id}", name="ui-trace")
    async def trace(view: View, request: Request, trace_id: str) -> Response:
        span = request.query.get("span", "")
        return await serve(view, lambda w: trace_page(w, trace_id, span, settings))

    @app.page("/ui/services", name="ui-services")
    async def services(view: View, request: Request) -> Response:
        params = dict(request.query)
        return await serve(view, lambda w: services_page(w, params, time.time_ns(), settings))

    @app.page("/ui/graph", name="ui-graph")
    async def graph(view: View, request: Request) -> Response:
        params = dict(request.query)
        return await serve(view, lambda w: graph_page(w, params, time.time_ns(), settings))

    del search, trace, services, graph


def _register_health(pipeline: Pipeline) -> None:
    """The probes' endpoints; what they check is in streams/health.py."""
    app, writer = pipeline.app, pipeline.writer
    warehouse = WarehouseCheck(lambda: writer.run_on_writer(lambda w: w.query("SELECT 1")))
    # Probes show only the status code: the worker's log says why it is (not) ready.
    previous: Readiness | None = None

    @app.page(LIVENESS_PATH)
    async def liveness(view: View, request: Request) -> Response:
        return view.json({"alive": True})

    @app.page(READINESS_PATH)
    async def ready(view: View, request: Request) -> Response:
        nonlocal previous
        group = GroupState(
            generation=app.consumer_generation_id,
            rebalancing=app.rebalancing,
            recovering=app.in_recovery,
            stopping=app.should_stop,
            assigned_partitions=len(app.assignor.assigned_actives()),
        )
        verdict = readiness(group, await warehouse.problem())
        change = readiness_change(previous, verdict)
        if change is not None:
            (log.info if verdict.ready else log.warning)("%s", change)
        previous = verdict
        return view.json(verdict.body(), status=200 if verdict.ready else 503)

    del liveness, ready


class _Worker(faust.Worker):
    """Faust's worker, with SIGUSR1 logging where every task waits (streams/stacks.py)."""

    def _on_sigusr1(self) -> None:
        # mode's handler prints only each task's outermost frame (mode's task wrapper).
        dump_task_stacks(self.loop)


def run_worker(settings: Settings) -> int:
    """Create the topics, then run the worker until it is stopped (SIGINT/SIGTERM); SIGUSR1
    logs every task's await chain (a stalled agent shows where it waits)."""
    created = ensure_topics(settings.kafka)
    if created:
        log.info("created topics: %s", ", ".join(created))
    pipeline = create_app(settings)
    worker = _Worker(
        pipeline.app,
        loglevel=settings.worker.log_level.upper(),
        quiet=True,
    )
    try:
        worker.execute_from_commandline()
    finally:
        pipeline.writer.close()
    return 0
