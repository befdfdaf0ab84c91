"""The Faust app of the settings (broker, state, web server, backpressure) and tracepipe's fixes
to faust-streaming's consumer at rebalances (seek holes, cleared buffers, never-committed
partitions)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Set
from typing import Any

import faust
from faust.types import TP
from mode import BaseSignalT

from streams.config import Settings
from streams.paths import resolve_path

log = logging.getLogger("tracepipe.worker")


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


def track_written_topics(app: faust.App, topics: Iterable[str]) -> None:
    """Keep every topic the worker writes (`topics` and its tables' changelogs) in its
    producer's metadata from the start (see `track_topics`)."""
    written = set(topics)

    async def track() -> None:
        producer = getattr(app.producer, "_producer", None)
        if producer is None:  # Faust starts its producer before any app task
            log.warning("producer not started: its topics' metadata is not tracked")
            return
        await track_topics(producer.client, written | set(app.tables.changelog_topics))

    app.task(track)


async def track_topics(client: Any, topics: Iterable[str]) -> None:
    """Have an aiokafka client fetch the metadata of every topic in `topics` on each refresh.

    aiokafka (0.14) fetches every topic's metadata until it tracks a topic of its own, which the
    first send to a topic it has not seen does (one created after it bootstrapped: Faust creates
    the changelog topics as the worker starts). From then on a refresh asks for the tracked
    topics only and replaces what the client knew, so a topic known from the bootstrap drops
    out: a batch queued for it waits for a leader no refresh brings back, and with it every
    flush, so every commit, so the fetcher behind the commit (a fresh worker's latency merge
    froze this way waiting on its first marks). Tracking all of them up front keeps them."""
    await asyncio.gather(*(client.add_topic(topic) for topic in sorted(set(topics))))


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
