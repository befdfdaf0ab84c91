"""The worker composed: `create_app(settings)` builds the Faust app (a deliberate, stable app id)
and wires each stage to its agents, topics and routes; `run_worker` runs it."""

from __future__ import annotations

import logging
import time
from functools import partial

from streams.aggregate.observations import (
    EDGE_DIMENSIONS,
    LATENCY_DIMENSIONS,
    ORIGIN_DIMENSIONS,
    edge_observations,
    latency_batch,
    origin_observations,
)
from streams.aggregate.stage import AggregationStage, Signal
from streams.assemble.record import TraceRecord
from streams.assemble.stage import AssemblyStage
from streams.broker.topics import TopicNames, ensure_topics
from streams.config import Settings
from streams.sink.decoder import SpansByPartition
from streams.sink.windows import (
    EDGES,
    EDGES_COLUMNS,
    ERROR_ORIGIN_WINDOWS,
    ERROR_ORIGIN_WINDOWS_COLUMNS,
    LATENCY,
    LATENCY_COLUMNS,
    edge_row,
    latency_row,
    origin_window_row,
)
from streams.sink.writer import WarehouseWriter
from streams.telemetry import Counters
from streams.warehouse import Warehouse, open_warehouse
from streams.warehouse.migrate import migrate
from streams.worker.alert import AlertStage
from streams.worker.alert_delivery import register_alert_delivery
from streams.worker.assemble import AssemblyState, PendingMarks, SweepBacklog
from streams.worker.batch import MessagesByPartition, current_generation
from streams.worker.faust_app import (
    faust_app,
    hold_streams_until_seeked,
    raw_topic,
    refetch_cleared_buffers,
    track_written_topics,
)
from streams.worker.ingest import register_bridge
from streams.worker.pipeline import Pipeline
from streams.worker.sink import register_span_sink
from streams.worker.startup import Worker, check_web_port, collect_garbage_less_often, own_data_path
from streams.worker.sweep import register_assembly
from streams.worker.web import register_health, register_web
from streams.worker.windows import register_aggregation

log = logging.getLogger("tracepipe.app")


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
        # A mark waits for the edge and origin windows of its trace: window, lateness, idle rule.
        marks_wait_ms=windows.window_ms + windows.allowed_lateness_ms + windows.partition_idle_ms,
    )
    traces_topic = raw_topic(app, topics.traces)
    latency_partials_topic = raw_topic(app, topics.latency_partials)
    latency_topic = raw_topic(app, topics.latency)
    edge_partials_topic = raw_topic(app, topics.edge_partials)
    edges_topic = raw_topic(app, topics.edges)
    origin_partials_topic = raw_topic(app, topics.origin_partials)
    origins_topic = raw_topic(app, topics.origins)
    def aggregation(signal: Signal) -> AggregationStage:
        return AggregationStage(
            signal,
            settings.aggregation,
            settings.kafka.partitions,
            counters,
            time.time_ns,
            partial(current_generation, app),
        )

    latency = aggregation(
        Signal(
            name="latency",
            dimensions=LATENCY_DIMENSIONS,
            source_topic=topics.spans,
            output_schema="latency",
            table=LATENCY,
            columns=LATENCY_COLUMNS,
            row=latency_row,
        )
    )
    edges = aggregation(
        Signal(
            name="edges",
            dimensions=EDGE_DIMENSIONS,
            # Fed in process at emission: its source partitions are the spans partitions.
            source_topic=topics.spans,
            output_schema="edge",
            table=EDGES,
            columns=EDGES_COLUMNS,
            row=edge_row,
        )
    )
    origins = aggregation(
        Signal(
            name="origins",
            dimensions=ORIGIN_DIMENSIONS,
            # Fed in process at emission, as the edges are.
            source_topic=topics.spans,
            output_schema="origin",
            table=ERROR_ORIGIN_WINDOWS,
            columns=ERROR_ORIGIN_WINDOWS_COLUMNS,
            row=origin_window_row,
        )
    )

    def assemble(batch: SpansByPartition, messages: MessagesByPartition) -> None:
        state.add(batch, messages)

    def observe_spans(batch: SpansByPartition, messages: MessagesByPartition) -> None:
        for partition, partition_messages in messages.items():
            columns = batch.get(partition)
            observations = latency_batch(columns) if columns is not None else ()
            latency.observe(partition, observations, partition_messages)

    def observe_traces(partition: int, records: list[TraceRecord], pending: PendingMarks) -> None:
        edges.observe(partition, edge_observations(records), [pending])
        origins.observe(partition, origin_observations(records), [pending])

    backlog = SweepBacklog(counters)
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
        admit=backlog.wait,
    )
    register_assembly(
        app,
        assembly,
        traces_topic,
        writer,
        counters,
        state,
        on_published=observe_traces,
        backlog=backlog,
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
    register_aggregation(
        app,
        latency,
        latency_partials_topic,
        latency_topic,
        writer,
        counters,
        on_final=(alerting.on_final_windows,),
    )
    register_aggregation(app, edges, edge_partials_topic, edges_topic, writer, counters)
    register_aggregation(app, origins, origin_partials_topic, origins_topic, writer, counters)
    register_alert_delivery(
        app,
        alerts_topic,
        dlq_topic,
        writer,
        settings.alert,
        counters,
        external_url=f"http://{settings.worker.web_host}:{settings.worker.web_port}",
    )
    track_written_topics(app, topics.all())
    pipeline = Pipeline(app, settings, topics, counters, writer, state, (latency, edges, origins))
    register_web(pipeline)
    register_health(pipeline)
    return pipeline


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
            worker = Worker(
                pipeline.app,
                loglevel=settings.worker.log_level.upper(),
                quiet=True,
            )
            collect_garbage_less_often()
            worker.execute_from_commandline()
        finally:
            pipeline.writer.close()
    return 0
