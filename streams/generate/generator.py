"""TraceGenerator: traces of canonical spans that follow a topology, deterministic for a seed.

    generator = TraceGenerator(default_topology(), seed=1, incidents=[parse_incident(
        "payment:latency*5@2m-4m")], clock_skew_ms=50)
    spans = generator.trace(time.time_ns())               # one trace
    stats = generator.run(producer.send_many, spans_per_s=10_000, duration_s=60)   # paced

How a trace is made, from one entrypoint (picked by weight) down:

- An operation's span lasts its own lognormal time (half before its first call, half after its
  last) plus its calls: sequential steps one after the other, a parallel step as long as its
  slowest call (its calls start together, so they overlap).
- An RPC is a CLIENT span in the caller and a SERVER span in a host of the callee; the client
  span is longer by the topology's network time, split evenly between request and response.
  A database call is one CLIENT span (db.system, db.name, server.address). A publish is a
  PRODUCER span; the consumer's CONSUMER span is its child and links to it, starting after the
  queue delay, and nobody waits for it.
- Errors: each span fails with its operation's error rate (an incident's, while one is on). A
  failed RPC fails its CLIENT span, and its caller with the call's `propagate_errors`
  probability (1 unless the topology says otherwise), and so on up; asynchronous consumers
  never fail their producer.
- Hosts: each service has `instances` hosts (resource attributes service.name,
  service.instance.id, host.name); each visit picks one. With `clock_skew_ms`, every host gets a
  fixed clock offset in [-clock_skew_ms, +clock_skew_ms], drawn from the seed, added to the
  times of its spans, as a real host's clock would be: a server span can then start before its
  client span, which the assembler's skew adjuster corrects.

Determinism: a generator draws the shape of its traces (entrypoints, structure, hosts,
durations, errors) from one `random.Random(seed)`, so two generators with the same seed,
topology and incidents make the same shapes when asked for the same start times; `run` derives
start times from the rate alone (trace n starts when the spans before it were due), so two runs
with the same seed and rate make the same load, offset by their start time. Trace and span ids
come from a stream of their own, fresh every time unless `id_seed` is given: a second run of the
same seed must not repeat the first one's trace ids, which the pipeline would take as late spans
of the first run's traces. Spans share their resource and attribute dicts with other spans of
the same host and operation: treat them as read-only.
"""

from __future__ import annotations

import bisect
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streams import __version__
from streams.errors import ConfigError
from streams.generate.incident import Incident, check_incidents
from streams.generate.topology import (
    DatabaseCall,
    Operation,
    PublishCall,
    ServiceCall,
    Topology,
)
from streams.model.span import AttributeValue, Span

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger("tracepipe.generate")

SCOPE_NAME = "tracepipe.generate"
SOURCE_FORMAT = "tracepipe"
DEFAULT_TICK_S = 0.1
DEFAULT_PROGRESS_INTERVAL_S = 5.0
DEFAULT_MAX_LAG_S = 1.0

_NS_PER_MS = 1_000_000
_RPC, _DB, _PUBLISH = 0, 1, 2


class _Host:
    """One instance of a service: its resource (shared by its spans) and its clock offset."""

    __slots__ = ("name", "resource", "service", "skew_ns")

    def __init__(self, service: str, name: str, resource: dict[str, AttributeValue]) -> None:
        self.service = service
        self.name = name
        self.resource = resource
        self.skew_ns = 0


class _Op:
    """An operation compiled for generation: numbers in ns, attribute dicts built once."""

    __slots__ = (
        "attributes",
        "downstream_error_attributes",
        "error_attributes",
        "error_message",
        "error_rate",
        "host_count",
        "hosts",
        "incidents",
        "key",
        "median_ns",
        "name",
        "service",
        "sigma",
        "steps",
    )

    def __init__(self, service: str, operation: Operation, hosts: list[_Host]) -> None:
        self.service = service
        self.name = operation.name
        self.key = f"{service}/{operation.name}"
        self.hosts = hosts
        self.host_count = len(hosts)
        self.median_ns = operation.latency.median_ms * _NS_PER_MS
        self.sigma = operation.latency.sigma
        self.error_rate = operation.error_rate
        self.attributes = dict(operation.attributes)
        self.error_attributes = {**self.attributes, "error.type": "InternalError"}
        self.downstream_error_attributes = {**self.attributes, "error.type": "DownstreamError"}
        self.error_message = f"{self.key} failed"
        self.incidents: tuple[Incident, ...] = ()
        self.steps: list[tuple[bool, list[_Call]]] = []


class _Call:
    """One call site compiled for generation."""

    __slots__ = (
        "attributes",
        "delay_median_ns",
        "delay_sigma",
        "error_attributes",
        "error_message",
        "error_rate",
        "kind",
        "median_ns",
        "name",
        "probability",
        "propagate",
        "sigma",
        "target",
    )

    def __init__(self, kind: int, name: str, attributes: dict[str, AttributeValue]) -> None:
        self.kind = kind
        self.name = name
        self.attributes = attributes
        self.error_attributes = {**attributes, "error.type": "DownstreamError"}
        self.error_message = ""
        self.probability = 1.0
        self.propagate = 1.0
        self.error_rate = 0.0
        self.median_ns = 0.0
        self.sigma = 0.0
        self.delay_median_ns = 0.0
        self.delay_sigma = 0.0
        self.target: _Op | None = None


def _span(
    trace_id: str,
    span_id: str,
    parent_id: str,
    name: str,
    kind: str,
    start_ns: int,
    end_ns: int,
    host: _Host,
    attributes: dict[str, AttributeValue],
    error_message: str | None,
) -> Span:
    skew = host.skew_ns
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent_id,
        "trace_state": "",
        "name": name,
        "kind": kind,
        "start_time_unix_nano": start_ns + skew,
        "end_time_unix_nano": end_ns + skew,
        "status_code": "UNSET" if error_message is None else "ERROR",
        "status_message": error_message or "",
        "service_name": host.service,
        "resource_attributes": host.resource,
        "scope_name": SCOPE_NAME,
        "scope_version": __version__,
        "attributes": attributes,
        "events": [],
        "links": [],
        "source_format": SOURCE_FORMAT,
    }


@dataclass
class RunStats:
    """What a `run` produced so far (a snapshot at each progress report, final at the end)."""

    target_spans_per_s: float
    spans: int = 0
    traces: int = 0
    error_spans: int = 0
    error_traces: int = 0
    """Traces whose root span failed."""
    elapsed_s: float = 0.0
    scheduled_s: float = 0.0
    """How far the schedule has got: the spans sent were due in the first `scheduled_s` (a
    tick's worth goes out at the start of each tick, so this runs up to a tick ahead)."""
    behind_s: float = 0.0
    """Time skipped because generating and sending could not keep up (spans never made)."""
    interrupted: bool = False
    """Ended by Ctrl-C rather than by its duration."""

    @property
    def spans_per_s(self) -> float:
        """The achieved rate (over the schedule's time when that is ahead of the clock)."""
        seconds = max(self.elapsed_s, self.scheduled_s)
        return self.spans / seconds if seconds > 0 else 0.0

    def progress_line(self) -> str:
        """One line for a progress report."""
        line = (
            f"{self.elapsed_s:7.1f} s  {self.spans:,} spans  {self.traces:,} traces  "
            f"{self.spans_per_s:,.0f} spans/s (target {self.target_spans_per_s:,.0f})  "
            f"{self.error_spans:,} error spans"
        )
        if self.behind_s:
            line += f"  {self.behind_s:.2f} s skipped: cannot keep up"
        return line

    def summary(self) -> str:
        """The final one-line summary."""
        share = 100 * self.error_traces / self.traces if self.traces else 0.0
        how = "interrupted after" if self.interrupted else "in"
        line = (
            f"generated {self.spans:,} spans in {self.traces:,} traces {how} "
            f"{self.elapsed_s:.1f} s: {self.spans_per_s:,.0f} spans/s (target "
            f"{self.target_spans_per_s:,.0f}); {self.error_spans:,} error spans, "
            f"{self.error_traces:,} failed traces ({share:.2f}%)"
        )
        if self.behind_s:
            line += f"; {self.behind_s:.2f} s skipped because it could not keep up"
        return line


class TraceGenerator:
    """Makes traces of canonical spans following `topology`, shaped the same for the same `seed`.

    Trace and span ids are new for every generator unless `id_seed` is given (the same
    `id_seed` and `seed` then give the same ids). `incidents` change latencies and error rates
    for a time after `origin_ns` (the first trace's start unless given; `run` sets it to its own
    start). `resource_attributes` are added to every service's resource (e.g. a run id to find
    the spans again).
    """

    def __init__(
        self,
        topology: Topology,
        seed: int = 0,
        incidents: Sequence[Incident] = (),
        clock_skew_ms: float = 0.0,
        *,
        resource_attributes: dict[str, AttributeValue] | None = None,
        origin_ns: int | None = None,
        id_seed: int | None = None,
    ) -> None:
        if not clock_skew_ms >= 0:
            raise ConfigError(f"invalid clock_skew_ms {clock_skew_ms!r}; should be 0 or more")
        if resource_attributes and "service.name" in resource_attributes:
            raise ConfigError("resource_attributes cannot set service.name: the topology does")
        check_incidents(incidents, topology)
        self.topology = topology
        self.seed = seed
        self.incidents = tuple(incidents)
        self.clock_skew_ms = clock_skew_ms
        self.origin_ns = origin_ns
        self._rng = random.Random(seed)
        self.id_seed = id_seed
        # Ids from a stream of their own (seeded from the OS without `id_seed`): the shape of the
        # traces is the same whichever ids they get.
        self._ids = random.Random(None if id_seed is None else f"tracepipe-ids:{id_seed}")
        self.spans_generated = 0
        self.traces_generated = 0
        self.error_spans = 0
        self.error_traces = 0
        self._network_median_ns = topology.network.median_ms * _NS_PER_MS
        self._network_sigma = topology.network.sigma

        # Hosts, and their clock offsets from a stream of their own: the same seed gives the
        # same traces with or without skew.
        skew_rng = random.Random(f"tracepipe-clock-skew:{seed}")
        skew_ns = clock_skew_ms * _NS_PER_MS
        self._hosts: dict[str, list[_Host]] = {}
        for service in topology.services.values():
            hosts = []
            for i in range(1, service.instances + 1):
                name = f"{service.name}-{i}"
                resource: dict[str, AttributeValue] = {
                    "service.name": service.name,
                    "service.instance.id": name,
                    "host.name": name,
                    **service.attributes,
                    **(resource_attributes or {}),
                }
                host = _Host(service.name, name, resource)
                host.skew_ns = round(skew_rng.uniform(-skew_ns, skew_ns)) if skew_ns else 0
                hosts.append(host)
            self._hosts[service.name] = hosts

        self._ops: dict[tuple[str, str], _Op] = {}
        for service in topology.services.values():
            for operation in service.operations.values():
                op = _Op(service.name, operation, self._hosts[service.name])
                op.incidents = tuple(
                    i for i in self.incidents if i.applies_to(service.name, operation.name)
                )
                self._ops[service.name, operation.name] = op
        for service in topology.services.values():
            for operation in service.operations.values():
                op = self._ops[service.name, operation.name]
                op.steps = [
                    (step.parallel, [self._compile_call(call) for call in step.calls])
                    for step in operation.steps
                ]

        self._entries = [self._ops[e.service, e.operation] for e in topology.entrypoints]
        total = 0.0
        self._cumulative_weights: list[float] = []
        for entry in topology.entrypoints:
            total += entry.weight
            self._cumulative_weights.append(total)
        self._total_weight = total

    def _compile_call(self, call: ServiceCall | DatabaseCall | PublishCall) -> _Call:
        if isinstance(call, ServiceCall):
            target = self._ops[call.service, call.operation]
            compiled = _Call(
                _RPC,
                call.operation,
                {"server.address": call.service, **call.attributes},
            )
            compiled.target = target
            compiled.propagate = call.propagate_errors
            compiled.error_message = f"{target.key} failed"
        elif isinstance(call, DatabaseCall):
            attributes: dict[str, AttributeValue] = {"db.system": call.system}
            if call.name:
                attributes["db.name"] = call.name
            attributes["db.operation"] = call.operation
            attributes["server.address"] = call.address
            compiled = _Call(_DB, call.operation, attributes)
            compiled.error_attributes = {**attributes, "error.type": "DatabaseError"}
            compiled.median_ns = call.latency.median_ms * _NS_PER_MS
            compiled.sigma = call.latency.sigma
            compiled.error_rate = call.error_rate
            compiled.propagate = call.propagate_errors
            compiled.error_message = f"{call.system} {call.operation} failed"
        else:
            compiled = _Call(
                _PUBLISH,
                f"{call.destination} publish",
                {
                    "messaging.system": call.system,
                    "messaging.destination.name": call.destination,
                    "messaging.operation.type": "send",
                },
            )
            compiled.target = self._ops[call.consumer_service, call.consumer_operation]
            compiled.median_ns = call.latency.median_ms * _NS_PER_MS
            compiled.sigma = call.latency.sigma
            compiled.delay_median_ns = call.delay.median_ms * _NS_PER_MS
            compiled.delay_sigma = call.delay.sigma
            compiled.propagate = 0.0
        compiled.probability = call.probability
        return compiled

    # -----------------------------------------------------------------------------------------

    def trace(self, start_ns: int, entrypoint: str | None = None) -> list[Span]:
        """One trace whose root starts at `start_ns` (before clock skew), children first.

        `entrypoint` ("service/operation") picks the root operation; by default it is drawn by
        weight.
        """
        if self.origin_ns is None:
            self.origin_ns = start_ns
        rng = self._rng
        if entrypoint is None:
            pick = rng.random() * self._total_weight
            op = self._entries[bisect.bisect_right(self._cumulative_weights, pick)]
        else:
            service, _, operation = entrypoint.partition("/")
            found = self._ops.get((service, operation))
            if found is None:
                raise ConfigError(
                    f"unknown entrypoint {entrypoint!r}; should be SERVICE/OPERATION of the "
                    f"topology, e.g. {self._entries[0].key}"
                )
            op = found
        out: list[Span] = []
        trace_id = f"{self._ids.getrandbits(128) or 1:032x}"
        _, failed = self._serve(op, "SERVER", trace_id, "", start_ns, out)
        self.spans_generated += len(out)
        self.traces_generated += 1
        self.error_traces += failed
        return out

    def _serve(
        self,
        op: _Op,
        kind: str,
        trace_id: str,
        parent_id: str,
        start_ns: int,
        out: list[Span],
        link: str = "",
    ) -> tuple[int, bool]:
        """The span of one operation (and, first, its calls'); returns its end and error."""
        rng = self._rng
        host = op.hosts[int(rng.random() * op.host_count)] if op.host_count > 1 else op.hosts[0]
        span_id = f"{self._ids.getrandbits(64) or 1:016x}"
        self_ns = op.median_ns * math.exp(op.sigma * rng.gauss(0.0, 1.0))
        error_rate = op.error_rate
        if op.incidents:
            offset_ns = start_ns - (self.origin_ns or 0)
            for incident in op.incidents:
                if incident.active(offset_ns):
                    self_ns = self_ns * incident.latency_factor + incident.latency_add_ns
                    if incident.error_rate is not None:
                        error_rate = incident.error_rate
        failed = rng.random() < error_rate
        downstream = False
        before_ns = int(self_ns * 0.5)
        t = start_ns + before_ns
        for parallel, calls in op.steps:
            if parallel:
                end = t
                for call in calls:
                    call_end, call_failed = self._call(call, host, trace_id, span_id, t, out)
                    if call_end > end:
                        end = call_end
                    downstream = downstream or call_failed
                t = end
            else:
                t, call_failed = self._call(calls[0], host, trace_id, span_id, t, out)
                downstream = downstream or call_failed
        end_ns = t + int(self_ns) - before_ns
        if failed:
            attributes, message = op.error_attributes, op.error_message
        elif downstream:
            attributes, message = op.downstream_error_attributes, op.error_message
        else:
            attributes, message = op.attributes, None
        span = _span(
            trace_id, span_id, parent_id, op.name, kind, start_ns, end_ns, host, attributes, message
        )
        if link:
            span["links"].append(
                {"trace_id": trace_id, "span_id": link, "trace_state": "", "attributes": {}}
            )
        out.append(span)
        if message is not None:
            self.error_spans += 1
            return end_ns, True
        return end_ns, False

    def _call(
        self,
        call: _Call,
        host: _Host,
        trace_id: str,
        parent_id: str,
        start_ns: int,
        out: list[Span],
    ) -> tuple[int, bool]:
        """One call made from `host` at `start_ns`: its end, and whether it fails the caller."""
        rng = self._rng
        if call.probability < 1.0 and rng.random() >= call.probability:
            return start_ns, False
        kind = call.kind
        span_id = f"{self._ids.getrandbits(64) or 1:016x}"
        if kind == _RPC:
            target = call.target
            assert target is not None
            network_ns = int(
                self._network_median_ns * math.exp(self._network_sigma * rng.gauss(0.0, 1.0))
            )
            request_ns = network_ns // 2
            server_end, failed = self._serve(
                target, "SERVER", trace_id, span_id, start_ns + request_ns, out
            )
            end_ns = server_end + network_ns - request_ns
        elif kind == _DB:
            end_ns = start_ns + int(call.median_ns * math.exp(call.sigma * rng.gauss(0.0, 1.0)))
            failed = rng.random() < call.error_rate
        else:
            end_ns = start_ns + int(call.median_ns * math.exp(call.sigma * rng.gauss(0.0, 1.0)))
            delay_ns = int(call.delay_median_ns * math.exp(call.delay_sigma * rng.gauss(0.0, 1.0)))
            target = call.target
            assert target is not None
            self._serve(target, "CONSUMER", trace_id, span_id, end_ns + delay_ns, out, span_id)
            failed = False
        out.append(
            _span(
                trace_id,
                span_id,
                parent_id,
                call.name,
                "PRODUCER" if kind == _PUBLISH else "CLIENT",
                start_ns,
                end_ns,
                host,
                call.error_attributes if failed else call.attributes,
                call.error_message if failed else None,
            )
        )
        if not failed:
            return end_ns, False
        self.error_spans += 1
        propagate = call.propagate
        return end_ns, propagate >= 1.0 or (propagate > 0.0 and rng.random() < propagate)

    # -----------------------------------------------------------------------------------------

    def run(
        self,
        sink: Callable[[list[Span]], object],
        spans_per_s: float,
        duration_s: float = 0.0,
        *,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock_ns: Callable[[], int] = time.time_ns,
        on_progress: Callable[[RunStats], None] | None = None,
        progress_interval_s: float = DEFAULT_PROGRESS_INTERVAL_S,
        tick_s: float = DEFAULT_TICK_S,
        max_lag_s: float = DEFAULT_MAX_LAG_S,
        should_stop: Callable[[], bool] | None = None,
    ) -> RunStats:
        """Generate `spans_per_s` spans a second for `duration_s` (0: until `should_stop()` or
        Ctrl-C), handing them to `sink` once per tick; return the totals.

        Trace n starts (event time) when the spans before it are due: `wall_clock_ns()` at the
        start plus their count over the rate, so event times advance at exactly the rate. At
        each tick (every `tick_s` of `now()`) the traces due before the tick ends go to `sink`
        in one batch; the schedule is absolute, so the rate holds however long one tick takes.
        When generating and `sink` cannot keep up, the run falls behind; more than `max_lag_s`
        behind, the backlog is skipped (`behind_s`) rather than sent in a burst, and the run
        still ends at `duration_s`. `on_progress` gets a snapshot every `progress_interval_s`.
        """
        if not spans_per_s > 0:
            raise ConfigError(f"invalid spans_per_s {spans_per_s!r}; should be above 0")
        if not duration_s >= 0:
            raise ConfigError(f"invalid duration_s {duration_s!r}; should be 0 (no end) or more")
        stats = RunStats(target_spans_per_s=spans_per_s)
        start_s = now()
        origin_ns = wall_clock_ns()
        self.origin_ns = origin_ns
        end_s = duration_s if duration_s > 0 else math.inf
        s_per_span = 1.0 / spans_per_s
        scheduled = 0  # spans on the schedule so far (those skipped when behind included)
        next_progress_s = progress_interval_s
        spans_before, errors_before = self.spans_generated, self.error_spans
        traces_before, failed_before = self.traces_generated, self.error_traces
        trace = self.trace

        def update(elapsed_s: float) -> None:
            stats.scheduled_s = min(scheduled * s_per_span, end_s)
            stats.spans = self.spans_generated - spans_before
            stats.traces = self.traces_generated - traces_before
            stats.error_spans = self.error_spans - errors_before
            stats.error_traces = self.error_traces - failed_before
            stats.elapsed_s = elapsed_s

        try:
            while True:
                elapsed_s = now() - start_s
                due_s = scheduled * s_per_span  # when the next trace is due, after the start
                if due_s >= end_s:
                    # Everything due is out; the run still lasts its duration.
                    if end_s > elapsed_s:
                        sleep(end_s - elapsed_s)
                    break
                # Behind schedule at the end: the duration bounds the run.
                if elapsed_s >= end_s or (should_stop is not None and should_stop()):
                    break
                if due_s < elapsed_s - max_lag_s:
                    skip = math.ceil((elapsed_s - max_lag_s - due_s) * spans_per_s)
                    stats.behind_s += skip * s_per_span
                    scheduled += skip
                    due_s = scheduled * s_per_span
                # This tick's traces: those due before it ends; catching up, one tick's worth at
                # a time, so that a backlog cannot hold up the checks above.
                horizon_s = min(min(due_s, elapsed_s) + tick_s, end_s)
                batch: list[Span] = []
                while due_s < horizon_s:
                    spans = trace(origin_ns + int(due_s * 1e9))
                    batch += spans
                    scheduled += len(spans)
                    due_s = scheduled * s_per_span
                if batch:
                    sink(batch)
                elapsed_s = now() - start_s
                update(elapsed_s)
                if on_progress is not None and elapsed_s >= next_progress_s:
                    on_progress(RunStats(**vars(stats)))
                    while next_progress_s <= elapsed_s:
                        next_progress_s += progress_interval_s
                # Sleep until the tick in which the next trace is due (none when behind); never
                # less than a thousandth of a tick, so that time always moves on. A pass that
                # sent nothing always sleeps: with float rounding, the next trace can fall just
                # past this tick's horizon while its tick's start rounds to `elapsed_s`, and the
                # loop would spin without time moving.
                wake_s = min(math.floor(due_s / tick_s) * tick_s, end_s)
                if wake_s > elapsed_s or not batch:
                    sleep(max(wake_s - elapsed_s, tick_s / 1000))
        except KeyboardInterrupt:
            stats.interrupted = True
        update(now() - start_s)
        return stats


def otel_sink(exporter: SpanExporter) -> Callable[[list[Span]], None]:
    """A `run` sink that hands spans to an OpenTelemetry SDK exporter as ReadableSpans.

    The spans keep their ids and times (the SDK's tracer would make its own), so the exporter
    sees exactly what instrumented services would have exported. A batch the exporter refuses
    is logged; the exporter counts what it dropped.
    """
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExportResult
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

    kinds = {kind.name: kind for kind in SpanKind}
    flags = TraceFlags(TraceFlags.SAMPLED)
    unset = Status(StatusCode.UNSET)
    scopes: dict[tuple[str, str], Any] = {}
    # By identity: every span of a host shares one resource dict. The dict is kept in the value
    # so its id() cannot be reused while cached.
    resources: dict[int, tuple[dict[str, AttributeValue], Any]] = {}

    def context(trace_id: int, span_id: str) -> Any:
        return SpanContext(trace_id, int(span_id, 16), is_remote=False, trace_flags=flags)

    def convert(span: Span) -> Any:
        trace_id = int(span["trace_id"], 16)
        attributes = span["resource_attributes"]
        cached = resources.get(id(attributes))
        if cached is None or cached[0] is not attributes:
            cached = resources[id(attributes)] = (attributes, Resource(attributes))
        scope_key = (span["scope_name"], span["scope_version"])
        scope = scopes.get(scope_key)
        if scope is None:
            scope = scopes[scope_key] = InstrumentationScope(*scope_key)
        parent = span["parent_span_id"]
        status = (
            Status(StatusCode.ERROR, span["status_message"])
            if span["status_code"] == "ERROR"
            else unset
        )
        return ReadableSpan(
            name=span["name"],
            context=context(trace_id, span["span_id"]),
            parent=context(trace_id, parent) if parent else None,
            resource=cached[1],
            attributes=span["attributes"],
            events=[Event(e["name"], e["attributes"], e["time_unix_nano"]) for e in span["events"]],
            links=[
                Link(context(int(k["trace_id"], 16), k["span_id"]), k["attributes"])
                for k in span["links"]
            ],
            kind=kinds[span["kind"]],
            status=status,
            start_time=span["start_time_unix_nano"],
            end_time=span["end_time_unix_nano"],
            instrumentation_scope=scope,
        )

    def sink(spans: list[Span]) -> None:
        if exporter.export([convert(span) for span in spans]) is not SpanExportResult.SUCCESS:
            log.error("the exporter refused a batch of %d spans", len(spans))

    return sink
