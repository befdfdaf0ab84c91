"""The topology compiled for generation: hosts, operations and call sites with their numbers
in ns and their attribute dicts built once, and the span one visit makes."""

from __future__ import annotations

from streams import __version__
from streams.generate.incident import Incident
from streams.generate.topology_types import Operation
from streams.model.span import AttributeValue, Span

SCOPE_NAME = "tracepipe.generate"
SOURCE_FORMAT = "tracepipe"

NS_PER_MS = 1_000_000
RPC, DB, PUBLISH = 0, 1, 2
"""The kinds of a compiled call site."""


class Host:
    """One instance of a service: its resource (shared by its spans) and its clock offset."""

    __slots__ = ("name", "resource", "service", "skew_ns")

    def __init__(self, service: str, name: str, resource: dict[str, AttributeValue]) -> None:
        self.service = service
        self.name = name
        self.resource = resource
        self.skew_ns = 0


class CompiledOperation:
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

    def __init__(self, service: str, operation: Operation, hosts: list[Host]) -> None:
        self.service = service
        self.name = operation.name
        self.key = f"{service}/{operation.name}"
        self.hosts = hosts
        self.host_count = len(hosts)
        self.median_ns = operation.latency.median_ms * NS_PER_MS
        self.sigma = operation.latency.sigma
        self.error_rate = operation.error_rate
        self.attributes = dict(operation.attributes)
        self.error_attributes = {**self.attributes, "error.type": "InternalError"}
        self.downstream_error_attributes = {**self.attributes, "error.type": "DownstreamError"}
        self.error_message = f"{self.key} failed"
        self.incidents: tuple[Incident, ...] = ()
        self.steps: list[tuple[bool, list[CompiledCall]]] = []


class CompiledCall:
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
        self.target: CompiledOperation | None = None


def build_span(
    trace_id: str,
    span_id: str,
    parent_id: str,
    name: str,
    kind: str,
    start_ns: int,
    end_ns: int,
    host: Host,
    attributes: dict[str, AttributeValue],
    error_message: str | None,
) -> Span:
    """The canonical span of one visit to `host`, its times moved by the host's clock offset."""
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
