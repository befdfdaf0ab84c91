"""The microservice topology synthetic traces follow: services, operations, and their calls.

A topology is YAML (`tracepipe generate --topology FILE`; the default is
deploy/generate/webshop.yaml, read by `default_topology`). Every key is checked, unknown keys
included, and an error names the service, the operation and the key:

    network: {median_ms: 0.3, sigma: 0.4}   # optional: each RPC's network time (lognormal),
                                            # half before the server span starts, half after
    entrypoints:                            # root operations, picked by weight (default 1)
      - {operation: frontend/GET /, weight: 4}
      - {operation: frontend/POST /checkout, weight: 2}
    services:
      frontend:                             # the service.name
        instances: 3                        # hosts frontend-1..frontend-3 (default 1); a trace
                                            # visits one, picked at random, per call
        attributes: {service.version: "2.3"}   # extra resource attributes (optional)
        operations:
          POST /checkout:                   # the span name of the operation's SERVER span
                                            # (CONSUMER span when reached by `publish`)
            latency: {median_ms: 5, sigma: 0.5}  # the operation's own time, lognormal: median
                                            # and the sigma of its log (default 0.5); the span
                                            # lasts this plus the time of its calls
            error_rate: 0.002               # own errors, a fraction or "0.2%" (default 0)
            attributes: {http.route: /checkout}  # span attributes (optional)
            calls:                          # steps, one after the other (optional)
              - call: checkout/PlaceOrder   # RPC: a CLIENT span here, the SERVER span there
                probability: 1.0            # the step happens in this share of visits
                propagate_errors: 1.0       # chance a failed call fails this span too
                attributes: {rpc.system: grpc}   # extra CLIENT span attributes
              - parallel:                   # calls started together; the step lasts as long
                  - call: payment/Charge    # as the slowest
                  - call: currency/Convert
              - db: postgresql              # a database call: one CLIENT span (db.system,
                name: shop                  # db.name, server.address), no server half; edges
                operation: SELECT orders    # name it by db.system. operation: the span name
                address: postgres           # (default: the system); address: server.address
                latency: {median_ms: 2}     # (default: the system)
                error_rate: 0.001
              - publish: orders             # a message: a PRODUCER span here (messaging.system,
                system: kafka               # messaging.destination.name), and the consumer's
                consumer: shipping/ShipOrder  # CONSUMER span (child of and linked to the
                latency: {median_ms: 0.8}   # producer) after the queue delay. Asynchronous:
                delay: {median_ms: 15}      # the caller neither waits nor fails with it

Services and operations are referred to as `service/operation` (the operation may contain
spaces and slashes, the service may not). Calls must not form a cycle.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from streams.errors import ConfigError
from streams.model.span import AttributeValue
from streams.paths import deploy_root
from streams.strict_yaml import load_strict_yaml

DEFAULT_SIGMA = 0.5
DEFAULT_NETWORK_MEDIAN_MS = 0.3
DEFAULT_NETWORK_SIGMA = 0.4
MAX_INSTANCES = 10_000

_TOP_KEYS = ("network", "entrypoints", "services")
_SERVICE_KEYS = ("instances", "attributes", "operations")
_OPERATION_KEYS = ("latency", "error_rate", "attributes", "calls")
_LATENCY_KEYS = ("median_ms", "sigma")
_ENTRYPOINT_KEYS = ("operation", "weight")
_CALL_KEYS = {
    "call": ("call", "probability", "propagate_errors", "attributes"),
    "db": (
        "db",
        "name",
        "operation",
        "address",
        "latency",
        "error_rate",
        "probability",
        "propagate_errors",
    ),
    "publish": ("publish", "system", "consumer", "latency", "delay", "probability"),
}
_STEP_KINDS = (*_CALL_KEYS, "parallel")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*$")


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


class _Invalid(Exception):
    """A problem at one place of the file; load_topology adds the source and raises ConfigError."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)


# ---------------------------------------------------------------------------------------------
# Checked values. Each raises _Invalid naming `where` and the key.


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _mapping(where: str, raw: Any, what: str) -> dict[Any, Any]:
    if not isinstance(raw, dict):
        raise _Invalid(where, f"should be a mapping ({what}), not {raw!r}")
    return raw


def _keys(where: str, raw: dict[Any, Any], allowed: tuple[str, ...]) -> None:
    for key in raw:
        if key not in allowed:
            raise _Invalid(where, f"unknown key {key!r}; should be one of {', '.join(allowed)}")


def _require(where: str, raw: dict[Any, Any], key: str, hint: str) -> Any:
    if key not in raw:
        raise _Invalid(where, f"missing key {key!r}; {hint}")
    return raw[key]


def _fraction(where: str, key: str, raw: Any) -> float:
    if _is_number(raw) and 0 <= raw <= 1:
        return float(raw)
    match = _PERCENT.match(raw) if isinstance(raw, str) else None
    if match is None or float(match.group(1)) > 100:
        raise _Invalid(
            where,
            f"invalid {key} {raw!r}; should be a fraction between 0 and 1 or a percentage, "
            "e.g. 0.01 or 1%",
        )
    return float(match.group(1)) / 100


def _probability(where: str, key: str, raw: Any) -> float:
    value = _fraction(where, key, raw)
    if key == "probability" and value == 0:
        raise _Invalid(where, f"invalid {key} {raw!r}; should be above 0 (remove the call instead)")
    return value


def _text(where: str, key: str, raw: Any) -> str:
    if isinstance(raw, str) and raw.strip() and raw == raw.strip():
        return raw
    raise _Invalid(where, f"invalid {key} {raw!r}; should be a non-empty string")


def _latency(where: str, key: str, raw: Any) -> Latency:
    where = f"{where} {key}".strip()
    example = "e.g. {median_ms: 5, sigma: 0.5}"
    mapping = _mapping(where, raw, f"median_ms and sigma, {example}")
    _keys(where, mapping, _LATENCY_KEYS)
    median = _require(where, mapping, "median_ms", f"the median in milliseconds, {example}")
    if not _is_number(median) or median <= 0:
        raise _Invalid(where, f"invalid median_ms {median!r}; should be a number of ms above 0")
    sigma = mapping.get("sigma", DEFAULT_SIGMA)
    if not _is_number(sigma) or not 0 <= sigma <= 5:
        raise _Invalid(
            where,
            f"invalid sigma {sigma!r}; should be a number from 0 (always the median) to 5 "
            "(0.5 is typical)",
        )
    return Latency(float(median), float(sigma))


def _attributes(where: str, raw: Any) -> dict[str, AttributeValue]:
    where = f"{where} attributes".strip()
    mapping = _mapping(where, raw, "attribute names to values")
    out: dict[str, AttributeValue] = {}
    for key, value in mapping.items():
        if not isinstance(key, str) or not key:
            raise _Invalid(where, f"invalid attribute name {key!r}; should be a non-empty string")
        scalar = (str, int, float, bool)
        if isinstance(value, scalar) or (
            isinstance(value, list) and all(isinstance(v, scalar) for v in value)
        ):
            out[key] = value
        else:
            raise _Invalid(
                where,
                f"invalid attribute {key} {value!r}; should be a string, number, boolean or a "
                "list of them",
            )
    return out


def _reference(where: str, key: str, raw: Any) -> tuple[str, str]:
    text = _text(where, key, raw)
    service, slash, operation = text.partition("/")
    if not slash or not service or not operation:
        raise _Invalid(
            where, f"invalid {key} {raw!r}; should be SERVICE/OPERATION, e.g. payment/Charge"
        )
    return service, operation


# ---------------------------------------------------------------------------------------------


def _call(where: str, raw: Any) -> Call:
    mapping = _mapping(where, raw, f"a call: one of the keys {', '.join(_STEP_KINDS)}")
    kinds = [k for k in _CALL_KEYS if k in mapping]
    if len(kinds) != 1:
        found = f"both {' and '.join(kinds)}" if kinds else "none of them"
        raise _Invalid(
            where, f"a call has exactly one of the keys call, db, publish; this one has {found}"
        )
    kind = kinds[0]
    _keys(where, mapping, _CALL_KEYS[kind])
    probability = _probability(where, "probability", mapping.get("probability", 1.0))
    if kind == "call":
        service, operation = _reference(where, "call", mapping["call"])
        return ServiceCall(
            service,
            operation,
            probability,
            _probability(where, "propagate_errors", mapping.get("propagate_errors", 1.0)),
            _attributes(where, mapping.get("attributes", {})),
        )
    if kind == "db":
        system = _text(where, "db", mapping["db"])
        return DatabaseCall(
            system,
            _latency(where, "latency", _require(where, mapping, "latency", "e.g. {median_ms: 2}")),
            _text(where, "name", mapping["name"]) if "name" in mapping else "",
            _text(where, "operation", mapping.get("operation", system)),
            _text(where, "address", mapping.get("address", system)),
            _fraction(where, "error_rate", mapping.get("error_rate", 0.0)),
            probability,
            _probability(where, "propagate_errors", mapping.get("propagate_errors", 1.0)),
        )
    consumer = _require(where, mapping, "consumer", "the SERVICE/OPERATION that consumes it")
    service, operation = _reference(where, "consumer", consumer)
    hint = "e.g. {median_ms: 1}"
    return PublishCall(
        _text(where, "publish", mapping["publish"]),
        service,
        operation,
        _latency(where, "latency", _require(where, mapping, "latency", hint)),
        _latency(where, "delay", _require(where, mapping, "delay", "the queue delay, " + hint)),
        _text(where, "system", mapping.get("system", "kafka")),
        probability,
    )


def _steps(where: str, raw: Any) -> tuple[Step, ...]:
    if not isinstance(raw, list):
        raise _Invalid(f"{where} calls", f"should be a list of calls, not {raw!r}")
    steps: list[Step] = []
    for i, item in enumerate(raw):
        at = f"{where} calls[{i}]"
        if isinstance(item, dict) and "parallel" in item:
            _keys(at, item, ("parallel",))
            group = item["parallel"]
            if not isinstance(group, list) or not group:
                raise _Invalid(f"{at}.parallel", "should be a non-empty list of calls")
            calls = tuple(_call(f"{at}.parallel[{j}]", c) for j, c in enumerate(group))
            steps.append(Step(calls, parallel=True))
        else:
            steps.append(Step((_call(at, item),)))
    return tuple(steps)


def _operation(where: str, name: Any, raw: Any) -> Operation:
    if not isinstance(name, str) or not name.strip():
        raise _Invalid(where, f"invalid operation name {name!r}; should be a non-empty string")
    where = f"{where} operation {name!r}"
    mapping = _mapping(where, raw, "latency, error_rate, attributes, calls")
    _keys(where, mapping, _OPERATION_KEYS)
    latency = _require(where, mapping, "latency", "its own time, e.g. {median_ms: 5, sigma: 0.5}")
    return Operation(
        name,
        _latency(where, "latency", latency),
        _fraction(where, "error_rate", mapping.get("error_rate", 0.0)),
        _attributes(where, mapping.get("attributes", {})),
        _steps(where, mapping.get("calls", [])),
    )


def _service(name: Any, raw: Any) -> Service:
    if not isinstance(name, str) or not name or "/" in name or name != name.strip():
        raise _Invalid(
            "services",
            f"invalid service name {name!r}; should be a non-empty string without '/' or "
            "surrounding spaces",
        )
    where = f"service {name!r}"
    mapping = _mapping(where, raw, "instances, attributes, operations")
    _keys(where, mapping, _SERVICE_KEYS)
    instances = mapping.get("instances", 1)
    if not isinstance(instances, int) or isinstance(instances, bool):
        instances = 0
    if not 1 <= instances <= MAX_INSTANCES:
        raise _Invalid(
            where,
            f"invalid instances {mapping.get('instances')!r}; should be a whole number from 1 "
            f"to {MAX_INSTANCES}",
        )
    attributes = _attributes(where, mapping.get("attributes", {}))
    if "service.name" in attributes:
        raise _Invalid(where, "attribute 'service.name' is the service's key; remove it")
    raw_operations = _require(where, mapping, "operations", "a mapping of operation names")
    operations = _mapping(f"{where} operations", raw_operations, "operation names to operations")
    if not operations:
        raise _Invalid(f"{where} operations", "should have at least one operation")
    return Service(
        name,
        {op: _operation(where, op, body) for op, body in operations.items()},
        instances,
        attributes,
    )


def _entrypoints(raw: Any) -> tuple[Entrypoint, ...]:
    if not isinstance(raw, list) or not raw:
        raise _Invalid(
            "entrypoints",
            "should be a non-empty list like [{operation: frontend/GET /, weight: 1}]",
        )
    out: list[Entrypoint] = []
    for i, item in enumerate(raw):
        where = f"entrypoints[{i}]"
        mapping = _mapping(where, item, "operation and weight")
        _keys(where, mapping, _ENTRYPOINT_KEYS)
        service, operation = _reference(
            where, "operation", _require(where, mapping, "operation", "SERVICE/OPERATION")
        )
        weight = mapping.get("weight", 1)
        if not _is_number(weight) or weight <= 0:
            raise _Invalid(where, f"invalid weight {weight!r}; should be a number above 0")
        out.append(Entrypoint(service, operation, float(weight)))
    return tuple(out)


def _check_references(topology: Topology) -> None:
    """Every call names an existing operation, and calls form no cycle."""
    services = topology.services

    def resolve(where: str, key: str, service: str, operation: str) -> None:
        if service not in services:
            raise _Invalid(
                where,
                f"{key} {service}/{operation}: unknown service {service!r}; should be one of "
                f"{', '.join(sorted(services))}",
            )
        if operation not in services[service].operations:
            raise _Invalid(
                where,
                f"{key} {service}/{operation}: service {service!r} has no operation "
                f"{operation!r}; it has {', '.join(sorted(services[service].operations))}",
            )

    for i, entry in enumerate(topology.entrypoints):
        resolve(f"entrypoints[{i}]", "operation", entry.service, entry.operation)
    for service in services.values():
        for operation in service.operations.values():
            for i, step in enumerate(operation.steps):
                for j, call in enumerate(step.calls):
                    where = f"service {service.name!r} operation {operation.name!r} calls[{i}]"
                    if step.parallel:
                        where += f".parallel[{j}]"
                    if isinstance(call, ServiceCall):
                        resolve(where, "call", call.service, call.operation)
                    elif isinstance(call, PublishCall):
                        resolve(where, "consumer", call.consumer_service, call.consumer_operation)

    # Depth-first over operations; a grey node met again closes a cycle.
    state: dict[tuple[str, str], int] = {}
    path: list[tuple[str, str]] = []

    def visit(node: tuple[str, str]) -> None:
        state[node] = 1
        path.append(node)
        for step in topology.operation(*node).steps:
            for call in step.calls:
                if isinstance(call, ServiceCall):
                    target = (call.service, call.operation)
                elif isinstance(call, PublishCall):
                    target = (call.consumer_service, call.consumer_operation)
                else:
                    continue
                if state.get(target) == 1:
                    cycle = [*path[path.index(target) :], target]
                    raise _Invalid(
                        f"service {node[0]!r} operation {node[1]!r}",
                        f"calls form a cycle {' -> '.join(f'{s}/{o}' for s, o in cycle)}; "
                        "a trace must end",
                    )
                if target not in state:
                    visit(target)
        path.pop()
        state[node] = 2

    for service in services.values():
        for name in service.operations:
            if (service.name, name) not in state:
                visit((service.name, name))


def load_topology(text: str, source: str) -> Topology:
    """Parse and validate a topology's YAML; ConfigError names the service, operation and key.

    `source` names the file in messages.
    """
    try:
        document = load_strict_yaml(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"topology ({source}) cannot be parsed: {err}") from err
    try:
        mapping = _mapping("", document, "with keys services and entrypoints")
        _keys("top level", mapping, _TOP_KEYS)
        raw_services = _require("top level", mapping, "services", "a mapping of service names")
        services = _mapping("services", raw_services, "service names to services")
        if not services:
            raise _Invalid("services", "should have at least one service")
        network = mapping.get("network")
        topology = Topology(
            {name: _service(name, body) for name, body in services.items()},
            _entrypoints(_require("top level", mapping, "entrypoints", "the root operations")),
            _latency("", "network", network) if network is not None else DEFAULT_NETWORK,
            source,
        )
        _check_references(topology)
    except _Invalid as err:
        raise ConfigError(f"topology ({source}): {err}") from err
    except RecursionError as err:  # a pathologically deep (but acyclic) call chain
        raise ConfigError(f"topology ({source}): calls nest too deeply") from err
    return topology


def load_topology_file(path: str | Path) -> Topology:
    """A topology from a YAML file; ConfigError when it cannot be read or is invalid."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"topology file {path} cannot be read: {err}") from err
    return load_topology(text, str(path))


def default_topology_path() -> Path:
    """The built-in topology: deploy/generate/webshop.yaml."""
    return deploy_root() / "generate" / "webshop.yaml"


@functools.cache
def default_topology() -> Topology:
    """The built-in web-shop topology (read once)."""
    path = default_topology_path()
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(
            f"built-in topology {path} cannot be read: {err}; set TRACEPIPE_DEPLOY_DIR to the "
            "deploy/ directory, or pass --topology FILE"
        ) from err
    return load_topology(text, str(path))
