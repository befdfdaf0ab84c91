"""The worker's HTTP routes: /metrics, /api/stats, /api/query, the trace web view under /ui/ and
the probes (/healthz, /readyz)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from faust.web import Request, Response, View

from streams.errors import QueryRefusedError, TracepipeError
from streams.query import Reader, ReadOnlyReader, timing_settings
from streams.query.web import Page
from streams.query.web.compare import compare_page
from streams.query.web.download import Download, trace_download
from streams.query.web.graph import graph_page
from streams.query.web.markup import message_page
from streams.query.web.search import search_page
from streams.query.web.services import services_page
from streams.query.web.trace import trace_page
from streams.query.web.trace_fetch import find_text, span_details
from streams.worker.health import (
    LIVENESS_PATH,
    READINESS_PATH,
    GroupState,
    Readiness,
    WarehouseCheck,
    readiness,
    readiness_change,
)
from streams.worker.pipeline import Pipeline

# The routes log as the app did before they had a module of their own.
log = logging.getLogger("tracepipe.app")


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


def register_web(pipeline: Pipeline) -> None:
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

    async def send(
        view: View, build: Callable[[Reader], Download | Page], attachment: bool
    ) -> Response:
        """A file (saved under its name when `attachment`), or the page that says why not."""
        try:
            got: Download | Page = await writer.run_on_writer(lambda w: build(ReadOnlyReader(w)))
        except TracepipeError as err:
            log.warning("web view query failed: %s", err)
            got = message_page(500, "The query failed", str(err))
        if isinstance(got, Page):
            return view.html(got.html, status=got.status)
        headers = {"Content-Disposition": f'attachment; filename="{got.filename}"'}
        return view.bytes(
            got.body, content_type=got.content_type, headers=headers if attachment else None
        )

    @app.page("/ui/trace/{trace_id}/otlp.json", name="ui-trace-download")
    async def download(view: View, request: Request, trace_id: str) -> Response:
        return await send(view, lambda w: trace_download(w, trace_id), attachment=True)

    # What the trace page's script fetches: a span's details when it opens, find's texts.
    @app.page("/ui/trace/{trace_id}/span/{span_id}", name="ui-trace-span")
    async def span(view: View, request: Request, trace_id: str, span_id: str) -> Response:
        return await serve(view, lambda w: span_details(w, trace_id, span_id))

    @app.page("/ui/trace/{trace_id}/find.json", name="ui-trace-find")
    async def find(view: View, request: Request, trace_id: str) -> Response:
        return await send(view, lambda w: find_text(w, trace_id), attachment=False)

    @app.page("/ui/compare", name="ui-compare")
    async def compare(view: View, request: Request) -> Response:
        params = dict(request.query)
        return await serve(view, lambda w: compare_page(w, params))

    @app.page("/ui/services", name="ui-services")
    async def services(view: View, request: Request) -> Response:
        params = dict(request.query)
        return await serve(view, lambda w: services_page(w, params, time.time_ns(), settings))

    @app.page("/ui/graph", name="ui-graph")
    async def graph(view: View, request: Request) -> Response:
        params = dict(request.query)
        return await serve(view, lambda w: graph_page(w, params, time.time_ns(), settings))

    del search, trace, download, span, find, compare, services, graph


def register_health(pipeline: Pipeline) -> None:
    """The probes' endpoints; what they check is in streams/worker/health.py."""
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
