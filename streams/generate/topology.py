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
from pathlib import Path
from typing import Any

import yaml

from streams.errors import ConfigError
from streams.generate.topology_checks import (
    Invalid,
    check_attributes,
    check_fraction,
    check_keys,
    check_mapping,
    check_probability,
    check_reference,
    check_references,
    check_text,
    is_number,
    require_key,
)
from streams.generate.topology_types import (
    DEFAULT_NETWORK,
    DEFAULT_SIGMA,
    Call,
    DatabaseCall,
    Entrypoint,
    Latency,
    Operation,
    PublishCall,
    Service,
    ServiceCall,
    Step,
    Topology,
)
from streams.paths import deploy_root
from streams.strict_yaml import load_strict_yaml

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


def _latency(where: str, key: str, raw: Any) -> Latency:
    where = f"{where} {key}".strip()
    example = "e.g. {median_ms: 5, sigma: 0.5}"
    mapping = check_mapping(where, raw, f"median_ms and sigma, {example}")
    check_keys(where, mapping, _LATENCY_KEYS)
    median = require_key(where, mapping, "median_ms", f"the median in milliseconds, {example}")
    if not is_number(median) or median <= 0:
        raise Invalid(where, f"invalid median_ms {median!r}; should be a number of ms above 0")
    sigma = mapping.get("sigma", DEFAULT_SIGMA)
    if not is_number(sigma) or not 0 <= sigma <= 5:
        raise Invalid(
            where,
            f"invalid sigma {sigma!r}; should be a number from 0 (always the median) to 5 "
            "(0.5 is typical)",
        )
    return Latency(float(median), float(sigma))


def _call(where: str, raw: Any) -> Call:
    mapping = check_mapping(where, raw, f"a call: one of the keys {', '.join(_STEP_KINDS)}")
    kinds = [k for k in _CALL_KEYS if k in mapping]
    if len(kinds) != 1:
        found = f"both {' and '.join(kinds)}" if kinds else "none of them"
        raise Invalid(
            where, f"a call has exactly one of the keys call, db, publish; this one has {found}"
        )
    kind = kinds[0]
    check_keys(where, mapping, _CALL_KEYS[kind])
    probability = check_probability(where, "probability", mapping.get("probability", 1.0))
    if kind == "call":
        service, operation = check_reference(where, "call", mapping["call"])
        return ServiceCall(
            service,
            operation,
            probability,
            check_probability(where, "propagate_errors", mapping.get("propagate_errors", 1.0)),
            check_attributes(where, mapping.get("attributes", {})),
        )
    if kind == "db":
        system = check_text(where, "db", mapping["db"])
        return DatabaseCall(
            system,
            _latency(
                where, "latency", require_key(where, mapping, "latency", "e.g. {median_ms: 2}")
            ),
            check_text(where, "name", mapping["name"]) if "name" in mapping else "",
            check_text(where, "operation", mapping.get("operation", system)),
            check_text(where, "address", mapping.get("address", system)),
            check_fraction(where, "error_rate", mapping.get("error_rate", 0.0)),
            probability,
            check_probability(where, "propagate_errors", mapping.get("propagate_errors", 1.0)),
        )
    consumer = require_key(where, mapping, "consumer", "the SERVICE/OPERATION that consumes it")
    service, operation = check_reference(where, "consumer", consumer)
    hint = "e.g. {median_ms: 1}"
    return PublishCall(
        check_text(where, "publish", mapping["publish"]),
        service,
        operation,
        _latency(where, "latency", require_key(where, mapping, "latency", hint)),
        _latency(where, "delay", require_key(where, mapping, "delay", "the queue delay, " + hint)),
        check_text(where, "system", mapping.get("system", "kafka")),
        probability,
    )


def _steps(where: str, raw: Any) -> tuple[Step, ...]:
    if not isinstance(raw, list):
        raise Invalid(f"{where} calls", f"should be a list of calls, not {raw!r}")
    steps: list[Step] = []
    for i, item in enumerate(raw):
        at = f"{where} calls[{i}]"
        if isinstance(item, dict) and "parallel" in item:
            check_keys(at, item, ("parallel",))
            group = item["parallel"]
            if not isinstance(group, list) or not group:
                raise Invalid(f"{at}.parallel", "should be a non-empty list of calls")
            calls = tuple(_call(f"{at}.parallel[{j}]", c) for j, c in enumerate(group))
            steps.append(Step(calls, parallel=True))
        else:
            steps.append(Step((_call(at, item),)))
    return tuple(steps)


def _operation(where: str, name: Any, raw: Any) -> Operation:
    if not isinstance(name, str) or not name.strip():
        raise Invalid(where, f"invalid operation name {name!r}; should be a non-empty string")
    where = f"{where} operation {name!r}"
    mapping = check_mapping(where, raw, "latency, error_rate, attributes, calls")
    check_keys(where, mapping, _OPERATION_KEYS)
    latency = require_key(
        where, mapping, "latency", "its own time, e.g. {median_ms: 5, sigma: 0.5}"
    )
    return Operation(
        name,
        _latency(where, "latency", latency),
        check_fraction(where, "error_rate", mapping.get("error_rate", 0.0)),
        check_attributes(where, mapping.get("attributes", {})),
        _steps(where, mapping.get("calls", [])),
    )


def _service(name: Any, raw: Any) -> Service:
    if not isinstance(name, str) or not name or "/" in name or name != name.strip():
        raise Invalid(
            "services",
            f"invalid service name {name!r}; should be a non-empty string without '/' or "
            "surrounding spaces",
        )
    where = f"service {name!r}"
    mapping = check_mapping(where, raw, "instances, attributes, operations")
    check_keys(where, mapping, _SERVICE_KEYS)
    instances = mapping.get("instances", 1)
    if not isinstance(instances, int) or isinstance(instances, bool):
        instances = 0
    if not 1 <= instances <= MAX_INSTANCES:
        raise Invalid(
            where,
            f"invalid instances {mapping.get('instances')!r}; should be a whole number from 1 "
            f"to {MAX_INSTANCES}",
        )
    attributes = check_attributes(where, mapping.get("attributes", {}))
    if "service.name" in attributes:
        raise Invalid(where, "attribute 'service.name' is the service's key; remove it")
    raw_operations = require_key(where, mapping, "operations", "a mapping of operation names")
    operations = check_mapping(
        f"{where} operations", raw_operations, "operation names to operations"
    )
    if not operations:
        raise Invalid(f"{where} operations", "should have at least one operation")
    return Service(
        name,
        {op: _operation(where, op, body) for op, body in operations.items()},
        instances,
        attributes,
    )


def _entrypoints(raw: Any) -> tuple[Entrypoint, ...]:
    if not isinstance(raw, list) or not raw:
        raise Invalid(
            "entrypoints",
            "should be a non-empty list like [{operation: frontend/GET /, weight: 1}]",
        )
    out: list[Entrypoint] = []
    for i, item in enumerate(raw):
        where = f"entrypoints[{i}]"
        mapping = check_mapping(where, item, "operation and weight")
        check_keys(where, mapping, _ENTRYPOINT_KEYS)
        service, operation = check_reference(
            where, "operation", require_key(where, mapping, "operation", "SERVICE/OPERATION")
        )
        weight = mapping.get("weight", 1)
        if not is_number(weight) or weight <= 0:
            raise Invalid(where, f"invalid weight {weight!r}; should be a number above 0")
        out.append(Entrypoint(service, operation, float(weight)))
    return tuple(out)


def load_topology(text: str, source: str) -> Topology:
    """Parse and validate a topology's YAML; ConfigError names the service, operation and key.

    `source` names the file in messages.
    """
    try:
        document = load_strict_yaml(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"topology ({source}) cannot be parsed: {err}") from err
    try:
        mapping = check_mapping("", document, "with keys services and entrypoints")
        check_keys("top level", mapping, _TOP_KEYS)
        raw_services = require_key("top level", mapping, "services", "a mapping of service names")
        services = check_mapping("services", raw_services, "service names to services")
        if not services:
            raise Invalid("services", "should have at least one service")
        network = mapping.get("network")
        topology = Topology(
            {name: _service(name, body) for name, body in services.items()},
            _entrypoints(require_key("top level", mapping, "entrypoints", "the root operations")),
            _latency("", "network", network) if network is not None else DEFAULT_NETWORK,
            source,
        )
        check_references(topology)
    except Invalid as err:
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
