"""TraceGenerator: traces of canonical spans that follow a topology, deterministic for a seed.

    generator = TraceGenerator(default_topology(), seed=1, incidents=[parse_incident(
        "payment:latency*5@2m-4m")], clock_skew_ms=50)
    spans = generator.trace(time.time_ns())               # one trace
    stats = run_at_rate(generator, producer.send_many, spans_per_s=10_000, duration_s=60)

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

Determinism: a generator draws the shape of its traces (entrypoints, structure, hosts, durations,
errors) from one `random.Random(seed)`, so two generators with the same seed, topology and incidents
make the same shapes when asked for the same start times; `run_at_rate` (streams.generate.pacing)
derives start times from the rate alone (trace n starts when the spans before it were due), so two
runs with the same seed and rate make the same load, offset by their start time. Trace and span ids
come from a stream of their own, fresh every time unless `id_seed` is given: a second run of the
same seed must not repeat the first one's trace ids, which the pipeline would take as late spans of
the first run's traces. Spans share their resource and attribute dicts with other spans of the same
host and operation: treat them as read-only.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Sequence

from streams.errors import ConfigError
from streams.generate.compiled import (
    DB,
    NS_PER_MS,
    PUBLISH,
    RPC,
    CompiledCall,
    CompiledOperation,
    Host,
    build_span,
)
from streams.generate.incident import Incident, check_incidents
from streams.generate.topology_types import (
    DatabaseCall,
    PublishCall,
    ServiceCall,
    Topology,
)
from streams.model.span import AttributeValue, Span


class TraceGenerator:
    """Makes traces of canonical spans following `topology`, shaped the same for the same `seed`.

    Trace and span ids are new for every generator unless `id_seed` is given (the same `id_seed` and
    `seed` then give the same ids). `incidents` change latencies and error rates for a time after
    `origin_ns` (the first trace's start unless given; `run_at_rate` sets it to its own start).
    `resource_attributes` are added to every service's resource (e.g. a run id to find the spans
    again).
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
        self._network_median_ns = topology.network.median_ms * NS_PER_MS
        self._network_sigma = topology.network.sigma

        # Hosts, and their clock offsets from a stream of their own: the same seed gives the
        # same traces with or without skew.
        skew_rng = random.Random(f"tracepipe-clock-skew:{seed}")
        skew_ns = clock_skew_ms * NS_PER_MS
        self._hosts: dict[str, list[Host]] = {}
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
                host = Host(service.name, name, resource)
                host.skew_ns = round(skew_rng.uniform(-skew_ns, skew_ns)) if skew_ns else 0
                hosts.append(host)
            self._hosts[service.name] = hosts

        self._ops: dict[tuple[str, str], CompiledOperation] = {}
        for service in topology.services.values():
            for operation in service.operations.values():
                op = CompiledOperation(service.name, operation, self._hosts[service.name])
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

    def _compile_call(self, call: ServiceCall | DatabaseCall | PublishCall) -> CompiledCall:
        if isinstance(call, ServiceCall):
            target = self._ops[call.service, call.operation]
            compiled = CompiledCall(
                RPC,
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
            compiled = CompiledCall(DB, call.operation, attributes)
            compiled.error_attributes = {**attributes, "error.type": "DatabaseError"}
            compiled.median_ns = call.latency.median_ms * NS_PER_MS
            compiled.sigma = call.latency.sigma
            compiled.error_rate = call.error_rate
            compiled.propagate = call.propagate_errors
            compiled.error_message = f"{call.system} {call.operation} failed"
        else:
            compiled = CompiledCall(
                PUBLISH,
                f"{call.destination} publish",
                {
                    "messaging.system": call.system,
                    "messaging.destination.name": call.destination,
                    "messaging.operation.type": "send",
                },
            )
            compiled.target = self._ops[call.consumer_service, call.consumer_operation]
            compiled.median_ns = call.latency.median_ms * NS_PER_MS
            compiled.sigma = call.latency.sigma
            compiled.delay_median_ns = call.delay.median_ms * NS_PER_MS
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
        op: CompiledOperation,
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
        span = build_span(
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
        call: CompiledCall,
        host: Host,
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
        if kind == RPC:
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
        elif kind == DB:
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
            build_span(
                trace_id,
                span_id,
                parent_id,
                call.name,
                "PRODUCER" if kind == PUBLISH else "CLIENT",
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
