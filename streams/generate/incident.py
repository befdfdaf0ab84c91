"""Incidents injected into generated traces: an operation slower or failing for a while.

    payment:latency*5@2m-4m              payment's operations 5x slower from minute 2 to minute 4
    inventory:errors=20%@1m-3m           inventory's operations fail 20% of the time
    payment/Charge:latency*3@30s-90s     only payment's Charge operation
    cart:latency+50ms@1m                 50 ms more, from minute 1 to the end
    checkout/PlaceOrder:latency*2,errors=5%   both, for the whole run

The form is `SERVICE[/OPERATION]:EFFECT[,EFFECT...][@START-[END]]`:

- the target is a service (all its operations) or one operation (the operation may contain
  spaces and slashes: `frontend/GET /product:latency*2`);
- `latency*F` multiplies the operation's own time by F, `latency+D` adds the duration D; a
  span's duration still adds its calls' time, so callers are slower by the same amount;
- `errors=P` sets the operation's own error rate to P (`20%` or `0.2`); as with any error, it
  fails its callers too unless the call is asynchronous;
- times are relative to the generator's start, as durations such as `90s`, `2m`, `1m30s`,
  `500ms`, `1h` or bare seconds; without `END` the incident lasts to the end of the run,
  without `@...` the whole run.

Incidents apply by the (virtual) start time of each operation's span, so an incident window in
a rate-paced run covers the spans generated for that time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from streams.errors import ConfigError
from streams.generate.topology_types import Topology

FORM = "SERVICE[/OPERATION]:EFFECT[,EFFECT...][@START-[END]]"
EXAMPLES = "payment:latency*5@2m-4m, inventory:errors=20%@1m-3m, payment/Charge:latency*3@30s-90s"
EFFECTS = "latency*FACTOR, latency+DURATION, errors=PERCENT"

_NS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_NUMBER = re.compile(r"^\d+(?:\.\d*)?$|^\.\d+$")
_FACTOR = re.compile(r"^latency\s*\*\s*(\d+(?:\.\d*)?|\.\d+)$")
_ADD = re.compile(r"^latency\s*\+\s*(\S+)$")
_ERRORS = re.compile(r"^errors\s*=\s*(\d+(?:\.\d*)?|\.\d+)\s*(%?)$")


def parse_duration_ns(text: str) -> int:
    """Nanoseconds of a duration: `90s`, `2m`, `1m30s`, `500ms`, `1h`, or bare seconds (`2.5`).

    ValueError when it is none of these or negative.
    """
    value = text.strip()
    if _NUMBER.match(value):
        return round(float(value) * 1_000_000_000)
    parts = _DURATION_PART.findall(value)
    if not value or not parts or _DURATION_PART.sub("", value):
        raise ValueError(
            f"invalid duration {text!r}; should be like 90s, 2m, 1m30s, 500ms, 1h or seconds"
        )
    return round(sum(float(n) * _NS_PER_UNIT[unit] for n, unit in parts))


@dataclass(frozen=True, slots=True)
class Incident:
    """One incident: what it does to which operations, when (ns after the generator's start)."""

    service: str
    operation: str | None = None
    """None: every operation of the service."""
    latency_factor: float = 1.0
    latency_add_ns: int = 0
    error_rate: float | None = None
    """The own error rate during the incident; None leaves it as the topology says."""
    start_ns: int = 0
    end_ns: int | None = None
    """None: to the end of the run."""
    spec: str = ""

    def applies_to(self, service: str, operation: str) -> bool:
        """Whether the incident targets this operation."""
        return self.service == service and self.operation in (None, operation)

    def active(self, offset_ns: int) -> bool:
        """Whether the incident is on at `offset_ns` after the generator's start."""
        return self.start_ns <= offset_ns and (self.end_ns is None or offset_ns < self.end_ns)


def _invalid(spec: str, problem: str) -> ConfigError:
    return ConfigError(
        f"invalid incident {spec!r}: {problem}; expected {FORM} with EFFECT one of {EFFECTS}, "
        f"e.g. {EXAMPLES}"
    )


def parse_incident(spec: str) -> Incident:
    """An incident from its text form (see the module docstring); ConfigError shows the form."""
    text = spec.strip()
    head, at, window = text.rpartition("@")
    if not at:
        head, window = text, ""
    target, colon, effects = head.rpartition(":")
    if not colon or not target.strip():
        raise _invalid(spec, "no SERVICE: before the effect")
    service, slash, operation = target.strip().partition("/")
    if not service or (slash and not operation):
        raise _invalid(spec, f"invalid target {target.strip()!r}")

    factor, add_ns, error_rate = 1.0, 0, None
    for raw in effects.split(","):
        effect = raw.strip()
        if match := _FACTOR.match(effect):
            factor = float(match.group(1))
            if not 0 < factor < math.inf:
                raise _invalid(spec, f"invalid latency factor {match.group(1)}; should be above 0")
        elif match := _ADD.match(effect):
            try:
                add_ns = parse_duration_ns(match.group(1))
            except ValueError as err:
                raise _invalid(spec, str(err)) from err
        elif match := _ERRORS.match(effect):
            value = float(match.group(1))
            error_rate = value / 100 if match.group(2) else value
            if not 0 <= error_rate <= 1:
                raise _invalid(spec, f"invalid error rate {effect[7:].strip()}; should be 0..100%")
        else:
            raise _invalid(spec, f"unknown effect {effect!r}")

    start_ns, end_ns = 0, None
    if at:
        start_text, dash, end_text = window.partition("-")
        try:
            start_ns = parse_duration_ns(start_text)
            end_ns = parse_duration_ns(end_text) if end_text.strip() else None
        except ValueError as err:
            raise _invalid(spec, str(err)) from err
        if dash and not end_text.strip():
            end_ns = None
        if end_ns is not None and end_ns <= start_ns:
            raise _invalid(spec, f"the window {window!r} ends before it starts")
    return Incident(
        service,
        operation if slash else None,
        factor,
        add_ns,
        error_rate,
        start_ns,
        end_ns,
        text,
    )


def check_incidents(incidents: Iterable[Incident], topology: Topology) -> None:
    """ConfigError when an incident names a service or operation the topology lacks."""
    services = topology.services
    for incident in incidents:
        service = services.get(incident.service)
        if service is None:
            raise ConfigError(
                f"incident {incident.spec!r}: unknown service {incident.service!r}; the topology "
                f"({topology.source or 'given'}) has {', '.join(sorted(services))}"
            )
        if incident.operation is not None and incident.operation not in service.operations:
            raise ConfigError(
                f"incident {incident.spec!r}: service {incident.service!r} has no operation "
                f"{incident.operation!r}; it has {', '.join(sorted(service.operations))}"
            )
