"""The typed topology: services, their operations, and the calls (RPC, database, publish) that
make each operation's steps; `streams.generate.topology` reads one from YAML."""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.model.span import AttributeValue

DEFAULT_SIGMA = 0.5
DEFAULT_NETWORK_MEDIAN_MS = 0.3
DEFAULT_NETWORK_SIGMA = 0.4


@dataclass(frozen=True, slots=True)
class Latency:
    """A lognormal latency: `median_ms`, and `sigma`, the standard deviation of its log."""

    median_ms: float
    sigma: float = DEFAULT_SIGMA


@dataclass(frozen=True, slots=True)
class ServiceCall:
    """An RPC to another service's operation: a CLIENT span here, a SERVER span there."""

    service: str
    operation: str
    probability: float = 1.0
    propagate_errors: float = 1.0
    attributes: dict[str, AttributeValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DatabaseCall:
    """A call to an uninstrumented database: one CLIENT span with db.* attributes."""

    system: str
    latency: Latency
    name: str = ""
    operation: str = ""
    address: str = ""
    error_rate: float = 0.0
    probability: float = 1.0
    propagate_errors: float = 1.0


@dataclass(frozen=True, slots=True)
class PublishCall:
    """A message to a queue: a PRODUCER span here, a CONSUMER span in the consumer after
    `delay`; asynchronous."""

    destination: str
    consumer_service: str
    consumer_operation: str
    latency: Latency
    delay: Latency
    system: str = "kafka"
    probability: float = 1.0


Call = ServiceCall | DatabaseCall | PublishCall

DEFAULT_NETWORK = Latency(DEFAULT_NETWORK_MEDIAN_MS, DEFAULT_NETWORK_SIGMA)


@dataclass(frozen=True, slots=True)
class Step:
    """Calls made together: one call, or several in parallel (the step lasts as the slowest)."""

    calls: tuple[Call, ...]
    parallel: bool = False


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of a service: its own latency and error rate, and the calls it makes."""

    name: str
    latency: Latency
    error_rate: float = 0.0
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True, slots=True)
class Service:
    """A service: its operations and how many instances (hosts) run it."""

    name: str
    operations: dict[str, Operation]
    instances: int = 1
    attributes: dict[str, AttributeValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Entrypoint:
    """A root operation and its weight among the roots."""

    service: str
    operation: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Topology:
    """Services by name, the root operations, and the network time of an RPC."""

    services: dict[str, Service]
    entrypoints: tuple[Entrypoint, ...]
    network: Latency = DEFAULT_NETWORK
    source: str = ""

    def operation(self, service: str, operation: str) -> Operation:
        """The operation `service/operation`; KeyError if there is none."""
        return self.services[service].operations[operation]
