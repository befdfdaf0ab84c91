"""Checks of a topology document: each value's type and range, the keys allowed, and that calls
name existing operations and form no cycle. Each raises Invalid naming where and the key."""

from __future__ import annotations

import math
import re
from typing import Any

from streams.generate.topology_types import PublishCall, ServiceCall, Topology
from streams.model.span import AttributeValue

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*$")


class Invalid(Exception):
    """A problem at one place of the file; load_topology adds the source and raises ConfigError."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_mapping(where: str, raw: Any, what: str) -> dict[Any, Any]:
    if not isinstance(raw, dict):
        raise Invalid(where, f"should be a mapping ({what}), not {raw!r}")
    return raw


def check_keys(where: str, raw: dict[Any, Any], allowed: tuple[str, ...]) -> None:
    for key in raw:
        if key not in allowed:
            raise Invalid(where, f"unknown key {key!r}; should be one of {', '.join(allowed)}")


def require_key(where: str, raw: dict[Any, Any], key: str, hint: str) -> Any:
    if key not in raw:
        raise Invalid(where, f"missing key {key!r}; {hint}")
    return raw[key]


def check_fraction(where: str, key: str, raw: Any) -> float:
    if is_number(raw) and 0 <= raw <= 1:
        return float(raw)
    match = _PERCENT.match(raw) if isinstance(raw, str) else None
    if match is None or float(match.group(1)) > 100:
        raise Invalid(
            where,
            f"invalid {key} {raw!r}; should be a fraction between 0 and 1 or a percentage, "
            "e.g. 0.01 or 1%",
        )
    return float(match.group(1)) / 100


def check_probability(where: str, key: str, raw: Any) -> float:
    value = check_fraction(where, key, raw)
    if key == "probability" and value == 0:
        raise Invalid(where, f"invalid {key} {raw!r}; should be above 0 (remove the call instead)")
    return value


def check_text(where: str, key: str, raw: Any) -> str:
    if isinstance(raw, str) and raw.strip() and raw == raw.strip():
        return raw
    raise Invalid(where, f"invalid {key} {raw!r}; should be a non-empty string")


def check_attributes(where: str, raw: Any) -> dict[str, AttributeValue]:
    where = f"{where} attributes".strip()
    mapping = check_mapping(where, raw, "attribute names to values")
    out: dict[str, AttributeValue] = {}
    for key, value in mapping.items():
        if not isinstance(key, str) or not key:
            raise Invalid(where, f"invalid attribute name {key!r}; should be a non-empty string")
        scalar = (str, int, float, bool)
        if isinstance(value, scalar) or (
            isinstance(value, list) and all(isinstance(v, scalar) for v in value)
        ):
            out[key] = value
        else:
            raise Invalid(
                where,
                f"invalid attribute {key} {value!r}; should be a string, number, boolean or a "
                "list of them",
            )
    return out


def check_reference(where: str, key: str, raw: Any) -> tuple[str, str]:
    text = check_text(where, key, raw)
    service, slash, operation = text.partition("/")
    if not slash or not service or not operation:
        raise Invalid(
            where, f"invalid {key} {raw!r}; should be SERVICE/OPERATION, e.g. payment/Charge"
        )
    return service, operation


def check_references(topology: Topology) -> None:
    """Every call names an existing operation, and calls form no cycle."""
    services = topology.services

    def resolve(where: str, key: str, service: str, operation: str) -> None:
        if service not in services:
            raise Invalid(
                where,
                f"{key} {service}/{operation}: unknown service {service!r}; should be one of "
                f"{', '.join(sorted(services))}",
            )
        if operation not in services[service].operations:
            raise Invalid(
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
                    raise Invalid(
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
