"""The Faust application: built by `create_app(settings)` with a deliberate, stable app id."""

from __future__ import annotations

import gc
import json
import logging
import time
from collections.abc import Callable, Mapping, Set
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import faust
from faust.types import TP
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
from streams.assemble.agent import AssemblyState, PendingMarks, register_assembly
from streams.assemble.record import TraceRecord
from streams.assemble.stage import AssemblyStage
from streams.batch_agent import MessagesByPartition, current_generation
from streams.broker.probe import port_in_use
from streams.broker.topics import TopicNames, ensure_topics
from streams.config import Settings
from streams.errors import ConfigError, QueryRefusedError, TracepipeError
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
from streams.loop_lag import LoopLag
from streams.paths import resolve_path
from streams.query import Reader, ReadOnlyReader, timing_settings
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
from streams.warehouse import Warehouse, open_warehouse, parse_url
from streams.warehouse.migrate import migrate
from streams.warehouse.owner import claim_data_path

log = logging.getLogger("tracepipe.app")


@dataclass
class Pipeline:
    """The running app and what its agents share: topics, counters, the warehouse writer."""

    app: faust.App
    settings: Settings
    topics: TopicNames
    counters: Counters
    writer: WarehouseWriter
    assembly: AssemblyState
    aggregation: tuple[AggregationStage, ...] = ()
    loop_lag: LoopLag = field(default_factory=LoopLag)


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
        datadir=str(resolve_path(settings.worker.data_dir)),
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
        # Faust binds every interface unless told: web_host alone is only the advertised name.
        web_bind=settings.worker.web_host,
        web_port=settings.worker.web_port,
        # Faust's /table/<name>/<key> and /router views would serve the state tables (spans
        # held for assembly, alert state) on the unauthenticated port; nothing here uses them.
        web_tables_enabled=False,
        web_router_enabled=False,
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


def refetch_cleared_buffers(app: faust.App) -> None:
    """Let the consumer fetch again for every stream buffer that flow control clears.

    A stream buffer under high pressure takes its partition out of the consumer's fetch set
    until the buffer drains (mode's `FlowControlQueue`: a pressure-drop callback waits in the
    queue). At a rebalance `flow_control.resume()` clears the buffers without running those
    callbacks; an agent already waiting on the empty buffer never calls `get()` again to run
    them, nothing is fetched to wake it, and the partition is never read again (a restarted
    worker read nothing from its spans partitions, issue 14). A cleared buffer is empty, so
    its pending callbacks run at once.
    """
    flow_control: Any = app.flow_control
    clear = flow_control.clear

    def clear_and_refetch() -> None:
        clear()
        for queue in list(flow_control._queues):
            queue.maybe_endorse_pressure_drop()

    flow_control.clear = clear_and_refetch


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
    #
    # Every "seek back to the committed offsets" of Faust's (recovery's after each rebalance, and
    # getmany's when it drops a fetched batch because flow stopped meanwhile) relies on aiokafka's
    # seek_to_committed, which leaves a partition with no commit where its fetch position is:
    # the records fetched and dropped are never read again. Before a partition's first commit
    # (the holds keep records unacked until their windows are published) that lost a restarted
    # worker's whole spans backlog (fetched during recovery, dropped, never re-read: nothing
    # consumed for minutes) and, at an early rebalance, the held records the rebuilt windows
    # need (the early-rebalance gap). So each such seek also sends the never-committed stream
    # partitions back to offset 0, as `consumer_auto_offset_reset="earliest"` means (aiokafka
    # resets an offset retention removed to the earliest).
    def stop_flow_for_seek(
        sender: faust.App, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any
    ) -> None:
        consumer: Any = sender.consumer
        consumer.stop_flow()
        rewind_never_committed(consumer, sender.tables.changelog_topics)

    app.on_rebalance_complete.connect(stop_flow_for_seek)


def rewind_never_committed(consumer: Any, changelogs: Set[str]) -> None:
    """Make the consumer's `perform_seek` (Faust's seek to the committed offsets) also seek its
    never-committed stream partitions to offset 0; once per consumer."""
    if getattr(consumer, "_tracepipe_rewinds", False):
        return
    seek_to_committed = consumer.perform_seek

    async def perform_seek() -> None:
        await seek_to_committed()
        committed = {tp: consumer._committed_offset.get(tp) for tp in consumer.assignment()}
        rewind = never_committed(committed, changelogs)
        if rewind:
            # On the consumer's own thread (aiokafka is not thread-safe), as Faust's recovery
            # seeks its changelogs; Faust's seek_to_beginning is not usable (its
            # earliest_offsets passes the partitions to aiokafka as one tuple and raises).
            await consumer.seek_wait(dict.fromkeys(rewind, 0))

    consumer.perform_seek = perform_seek
    consumer._tracepipe_rewinds = True


def never_committed(committed: Mapping[TP, int | None], changelogs: Set[str]) -> list[TP]:
    """The stream partitions in `committed` (each assigned partition's committed offset, None
    if none) with no commit yet; changelog partitions are Faust's recovery's own."""
    return sorted(
        (tp for tp, offset in committed.items() if tp.topic not in changelogs and not offset),
        key=lambda tp: (tp.topic, tp.partition),
    )


def create_app(settings: Settings) -> Pipeline:
    """Build the Faust app and register every stage's agents; nothing connects until it runs."""
    app = faust_app(settings)
    hold_streams_until_seeked(app)
    refetch_cleared_buffers(app)
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
    windows = settings.aggregation
    state = AssemblyState(
        app,
        assembly,
        settings.kafka.partitions,
        topics.spans,
        # A mark waits for the edge windows of its trace's calls: window, lateness, idle rule.
        marks_wait_ms=windows.window_ms + windows.allowed_lateness_ms + windows.partition_idle_ms,
    )
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
            # Fed in process at emission: its source partitions are the spans partitions.
            source_topic=topics.spans,
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
        state.add(batch, messages)

    def observe_spans(batch: SpansByPartition, messages: MessagesByPartition) -> None:
        for partition, partition_messages in messages.items():
            columns = batch.get(partition)
            observations = latency_observations(columns) if columns is not None else []
            latency.observe(partition, observations, partition_messages)

    def observe_traces(partition: int, records: list[TraceRecord], pending: PendingMarks) -> None:
        edges.observe(partition, edge_observations(records), [pending])

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
    )
    register_assembly(
        app, assembly, traces_topic, writer, counters, state, on_published=observe_traces
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
        topics.latency_partials,
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
    pipeline = Pipeline(app, settings, topics, counters, writer, state, (latency, edges))
    _register_web(pipeline)
    _register_health(pipeline)
    return pipeline


def _spans_fetch_state(consumer: Any, topic: str) -> dict[str, Any]:
    """Per assigned spans partition: Faust's read offset and highwater, aiokafka's position and
    partition status (read across threads: a diagnostic, not a decision)."""
    state: dict[str, Any] = {}
    try:
        assignment = consumer._thread._ensure_consumer()._subscription.subscription.assignment
    except Exception:  # no consumer yet, or no assignment
        assignment = None
    for tp in sorted(consumer.assignment(), key=lambda tp: tp.partition):
        if tp.topic != topic:
            continue
        entry: dict[str, Any] = {"read_offset": consumer._read_offset.get(tp)}
        try:
            entry["highwater"] = consumer.highwater(tp)
            if assignment is not None:
                tp_state = assignment.state_value(tp)
                entry["position"] = tp_state._position
                entry["status"] = str(tp_state._status)
                entry["paused"] = tp_state.paused
        except Exception as err:  # reported, not handled
            entry["error"] = repr(err)
        state[str(tp.partition)] = entry
    return state


def _register_web(pipeline: Pipeline) -> None:
    app, counters, writer = pipeline.app, pipeline.counters, pipeline.writer

    async def watch_event_loop() -> None:
        await pipeline.loop_lag.run()

    app.task(watch_event_loop)

    @app.page("/metrics")
    async def metrics(view: View, request: Request) -> Response:
        return view.text(counters.render_prometheus())

    @app.page("/api/stats")
    async def stats(view: View, request: Request) -> Response:
        app_id = pipeline.settings.worker.app_id
        assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in app.assignor.assigned_actives())
        buffer = pipeline.assembly.stage.buffer
        # Gauges, not counters: what the assembler holds now (memory per held trace in bench).
        assembly = {
            "open_traces": buffer.open_trace_count,
            "retained_traces": buffer.retained_trace_count,
            "tombstones": buffer.tombstone_count,
            # Kept uncommitted until every trace they fed is emitted (re-read after a crash).
            "held_span_messages": pipeline.assembly.hold.held_count(),
            "mark_records": pipeline.assembly.marks.record_count,
        }
        aggregation = {stage.signal.name: stage.gauges() for stage in pipeline.aggregation}
        windows = {stage.signal.name: stage.progress() for stage in pipeline.aggregation}
        # Faust's fetch bookkeeping: a partition left out of the active set is not fetched.
        consumer: Any = app.consumer
        fetching = {
            "active": sorted(str(tp) for tp in consumer._get_active_partitions()),
            "buffered": sorted(str(tp) for tp in consumer._buffered_partitions),
            "paused": sorted(str(tp) for tp in consumer._paused_partitions),
            "flow_active": bool(consumer.flow_active) and app.flow_control.is_active(),
            "spans": _spans_fetch_state(consumer, pipeline.topics.spans),
        }
        return view.json(
            {
                "app_id": app_id,
                "assigned": assigned,
                "counters": counters.snapshot(),
                "assembly": assembly,
                "aggregation": aggregation,
                # The CLI quotes these when it says when windows appear.
                "settings": timing_settings(pipeline.settings),
                "windows": windows,
                "fetching": fetching,
                "event_loop": pipeline.loop_lag.snapshot(),
            }
        )

    @app.page("/api/query")
    class QueryView(View):
        """Runs one read-only SQL statement on the worker's ClickHouse (the CLI's way in), under
        ClickHouse's readonly=1 (`Warehouse.query_readonly`); a refusal is a 400 saying why."""

        async def post(self, request: Request) -> Response:
            body: dict[str, Any] = await request.json()
            sql = str(body.get("sql", ""))
            try:
                rows = await writer.run_on_writer(lambda w: w.query_readonly(sql))
            except QueryRefusedError as err:
                return self.json({"error": str(err), "refused": True}, status=400)
            except Exception as err:  # the client gets the engine's message
                return self.json({"error": str(err)}, status=400)
            payload = json.dumps({"rows": rows}, default=str).encode()
            return self.bytes(payload, content_type="application/json")

    del metrics, stats, QueryView
    _register_ui(pipeline)


def _register_ui(pipeline: Pipeline) -> None:
    """The trace web view under /ui/: each page is built on the writer thread (chDB lives there)."""
    app, writer, settings = pipeline.app, pipeline.writer, pipeline.settings

    async def serve(view: View, build: Callable[[Reader], Page]) -> Response:
        try:
            # The pages only read: their SQL runs under readonly=1 too, in case a value slips.
            page: Page = await writer.run_on_writer(lambda w: build(ReadOnlyReader(w)))
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


SHARED_PATH_ADVICE = (
    "a second worker cannot share it: stop that one, or give this worker its own clickhouse.url "
    "(TRACEPIPE_CLICKHOUSE_URL); workers that share data need a ClickHouse server (clickhouse://)"
)


def own_data_path(settings: Settings) -> AbstractContextManager[object]:
    """The claim on the embedded engine's data path (nothing for a server): a second worker on
    the path fails here, naming the owner, instead of retrying its inserts forever."""
    parsed = parse_url(settings.clickhouse.url)
    if parsed.scheme != "chdb":
        return nullcontext()
    return claim_data_path(parsed.path, SHARED_PATH_ADVICE)


def check_web_port(app: faust.App) -> None:
    """Raise ConfigError naming worker.web_port when the web server could not listen: Faust
    would find out only after joining the consumer group, and end with a traceback."""
    host, port = app.conf.web_bind, app.conf.web_port
    try:
        taken = port_in_use(host, port)
    except OSError as err:
        raise ConfigError(
            f"the worker's web server cannot listen on {host}:{port}: {err}; check "
            "worker.web_host (TRACEPIPE_WORKER_WEB_HOST)"
        ) from err
    if taken:
        raise ConfigError(
            f"port {port} ({host}:{port}) is already in use, so this worker's web server cannot "
            "listen there (another worker?); stop that process or set worker.web_port "
            "(TRACEPIPE_WORKER_WEB_PORT) to a free port"
        )


GC_YOUNG_THRESHOLD = 50_000
"""Allocations between collections of the youngest generation (CPython's default: 700).

The worker holds millions of long-lived container objects (held and retained spans as tuples,
their traces, span id sets), and every collection that reaches the older generations walks
them all: py-spy put ~11% of a drain on `CompactSpans.decode`'s one dict per span, the
collections it set off. Measured: the assembly core in process 15.3 -> 11.2 CPU µs/span with
160,000 spans retained; `bench.drain --spans 300000`, one worker, until every trace is stored,
55.3 -> 44.3 worker CPU µs/span (bench/README.md). Reference counting frees almost everything;
the collector is only for cycles, rare on the hot path."""


def collect_garbage_less_often() -> None:
    """Raise the collector's thresholds for a worker's heap (see GC_YOUNG_THRESHOLD) and move
    what start-up made (modules, the app, its agents) out of its reach for good."""
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 100)
    gc.freeze()


def run_worker(settings: Settings) -> int:
    """Claim the data path and check the web port, create the topics, then run the worker until
    it is stopped (SIGINT/SIGTERM). Nothing joins the consumer group before both checks pass;
    SIGUSR1 logs every task's await chain (a stalled agent shows where it waits)."""
    with own_data_path(settings):
        pipeline = create_app(settings)
        try:
            check_web_port(pipeline.app)
            created = ensure_topics(settings.kafka)
            if created:
                log.info("created topics: %s", ", ".join(created))
            worker = _Worker(
                pipeline.app,
                loglevel=settings.worker.log_level.upper(),
                quiet=True,
            )
            collect_garbage_less_often()
            worker.execute_from_commandline()
        finally:
            pipeline.writer.close()
    return 0
