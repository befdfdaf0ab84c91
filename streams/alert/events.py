"""AlertEvent: a typed view of one record of tracepipe.alerts (schemas/avro/alert.avsc).

Field names and units are the schema's (`*_unix_nano`, `*_ns`); `value`, `threshold` and
`baseline` are in the unit of `signal`: ns for p50..p99, a share (0..1) for error_rate,
calls per second for throughput. The text helpers here render them in human units for the
CLI and the webhook annotations. Nothing here imports Kafka, Faust or ClickHouse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.aggregate.merge import PERCENTILE_SIGNALS
from streams.query.table import format_ms, format_quantity

PENDING = "pending"
FIRING = "firing"
RESOLVED = "resolved"
CANCELLED = "cancelled"
STATES = (PENDING, FIRING, RESOLVED, CANCELLED)
"""Every alert state, in lifecycle order."""

LATENCY_SIGNALS = tuple(PERCENTILE_SIGNALS)
"""Signals measured in nanoseconds."""


def format_signal_value(signal: str, value: float) -> str:
    """`value` of `signal` in human units: `612 ms`, `2.50%`, `41.7 calls/s`."""
    if signal in LATENCY_SIGNALS:
        return f"{format_ms(value)} ms"
    if signal == "error_rate":
        return f"{format_quantity(value * 100)}%"
    if signal == "throughput":
        return f"{format_quantity(value)} calls/s"
    return f"{value:g}"


@dataclass(frozen=True)
class Attribution:
    """One service/operation's critical-path self time, breaching window against baseline."""

    service: str
    operation: str
    baseline_self_time_ns: float
    current_self_time_ns: float
    increase_ns: float
    share: float
    """This increase / the sum of all positive increases (0..1)."""

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Attribution:
        """The attribution of one Avro `Attribution` record."""
        return cls(
            service=str(record["service"]),
            operation=str(record["operation"]),
            baseline_self_time_ns=float(record["baseline_self_time_ns"]),
            current_self_time_ns=float(record["current_self_time_ns"]),
            increase_ns=float(record["increase_ns"]),
            share=float(record["share"]),
        )

    def to_record(self) -> dict[str, Any]:
        """The Avro `Attribution` record."""
        return {
            "service": self.service,
            "operation": self.operation,
            "baseline_self_time_ns": self.baseline_self_time_ns,
            "current_self_time_ns": self.current_self_time_ns,
            "increase_ns": self.increase_ns,
            "share": self.share,
        }

    def describe(self) -> str:
        """`payment: charge +120 ms (80% of the increase)`."""
        sign = "+" if self.increase_ns >= 0 else "-"
        increase_ms = format_quantity(abs(self.increase_ns) / 1e6)
        return (
            f"{self.service}: {self.operation} {sign}{increase_ms} ms "
            f"({self.share * 100:.0f}% of the increase)"
        )


@dataclass(frozen=True)
class ErrorOriginShare:
    """Where some of an error-rate alert's errors originated (alert.avsc `ErrorOriginShare`,
    streams.alert.attribution.read_error_origins: its operation's error-origin windows, else its
    service's per-trace origins)."""

    service: str
    operation: str
    traces: int
    share: float
    """`traces` over all the error traces it was read over (0..1)."""
    propagated_to: tuple[str, ...] = ()

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ErrorOriginShare:
        """The share of one Avro `ErrorOriginShare` record."""
        return cls(
            service=str(record["service"]),
            operation=str(record["operation"]),
            traces=int(record["traces"]),
            share=float(record["share"]),
            propagated_to=tuple(str(s) for s in record.get("propagated_to") or ()),
        )

    def to_record(self) -> dict[str, Any]:
        """The Avro `ErrorOriginShare` record."""
        return {
            "service": self.service,
            "operation": self.operation,
            "traces": self.traces,
            "share": self.share,
            "propagated_to": list(self.propagated_to),
        }

    def describe(self, of_service: str) -> str:
        """`82% of checkout's error traces originate in inventory/Reserve`."""
        return (
            f"{self.share * 100:.0f}% of {of_service}'s error traces originate in "
            f"{self.service}/{self.operation}"
        )


@dataclass(frozen=True)
class AlertEvent:
    """One alert lifecycle transition, as published on tracepipe.alerts (key: fingerprint)."""

    fingerprint: str
    rule: str
    rule_type: str
    state: str
    service: str
    operation: str
    signal: str
    condition: str
    value: float
    threshold: float
    window_start_unix_nano: int
    window_end_unix_nano: int
    starts_at_unix_nano: int
    severity: str = "warning"
    # Not hashed: a dict is not hashable, and fingerprint + sequence identify an event.
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    baseline: float = 0.0
    ends_at_unix_nano: int = 0
    sequence: int = 0
    exemplar_trace_ids: tuple[str, ...] = ()
    attribution: tuple[Attribution, ...] = ()
    emitted_at_unix_nano: int = 0
    error_origins: tuple[ErrorOriginShare, ...] = ()

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> AlertEvent:
        """The event of one decoded alert record (fields with schema defaults may be absent)."""
        return cls(
            fingerprint=str(record["fingerprint"]),
            rule=str(record["rule"]),
            rule_type=str(record["rule_type"]),
            state=str(record["state"]),
            severity=str(record.get("severity", "warning")),
            labels={str(k): str(v) for k, v in (record.get("labels") or {}).items()},
            service=str(record["service"]),
            operation=str(record["operation"]),
            signal=str(record["signal"]),
            condition=str(record["condition"]),
            value=float(record["value"]),
            threshold=float(record["threshold"]),
            baseline=float(record.get("baseline", 0.0)),
            window_start_unix_nano=int(record["window_start_unix_nano"]),
            window_end_unix_nano=int(record["window_end_unix_nano"]),
            starts_at_unix_nano=int(record["starts_at_unix_nano"]),
            ends_at_unix_nano=int(record.get("ends_at_unix_nano", 0)),
            sequence=int(record.get("sequence", 0)),
            exemplar_trace_ids=tuple(str(t) for t in record.get("exemplar_trace_ids") or ()),
            attribution=tuple(Attribution.from_record(a) for a in record.get("attribution") or ()),
            emitted_at_unix_nano=int(record.get("emitted_at_unix_nano", 0)),
            error_origins=tuple(
                ErrorOriginShare.from_record(o) for o in record.get("error_origins") or ()
            ),
        )

    def to_record(self) -> dict[str, Any]:
        """The Avro record (every field of alert.avsc), ready for `AvroCodec("alert").encode`."""
        return {
            "fingerprint": self.fingerprint,
            "rule": self.rule,
            "rule_type": self.rule_type,
            "state": self.state,
            "severity": self.severity,
            "labels": dict(self.labels),
            "service": self.service,
            "operation": self.operation,
            "signal": self.signal,
            "condition": self.condition,
            "value": self.value,
            "threshold": self.threshold,
            "baseline": self.baseline,
            "window_start_unix_nano": self.window_start_unix_nano,
            "window_end_unix_nano": self.window_end_unix_nano,
            "starts_at_unix_nano": self.starts_at_unix_nano,
            "ends_at_unix_nano": self.ends_at_unix_nano,
            "sequence": self.sequence,
            "exemplar_trace_ids": list(self.exemplar_trace_ids),
            "attribution": [a.to_record() for a in self.attribution],
            "emitted_at_unix_nano": self.emitted_at_unix_nano,
            "error_origins": [o.to_record() for o in self.error_origins],
        }

    @property
    def time_unix_nano(self) -> int:
        """When the transition was published; the window end for records that lack it."""
        return self.emitted_at_unix_nano or self.window_end_unix_nano

    @property
    def slowest_trace_id(self) -> str:
        """The slowest exemplar trace of the window ('' when there is none)."""
        return self.exemplar_trace_ids[0] if self.exemplar_trace_ids else ""

    @property
    def top_attribution(self) -> Attribution | None:
        """The largest critical-path increase, if the event carries an attribution."""
        return self.attribution[0] if self.attribution else None

    @property
    def top_error_origin(self) -> str:
        """Where most of the service's error traces originated ('' without error origins)."""
        return self.error_origins[0].describe(self.service) if self.error_origins else ""

    def summary_line(self) -> str:
        """One line: time, STATE, severity, rule, service/operation, the value against the
        threshold, the slowest trace and the largest critical-path increase."""
        from streams.query.timestamps import format_time

        parts = [
            format_time(self.time_unix_nano),
            f"{self.state.upper():9}",
            f"{self.severity:8}",
            self.rule,
            f"{self.service}/{self.operation}",
            self.comparison(),
        ]
        if self.slowest_trace_id:
            parts.append(f"trace {self.slowest_trace_id}")
        if self.top_attribution is not None:
            parts.append(self.top_attribution.describe())
        if self.top_error_origin:
            parts.append(self.top_error_origin)
        return "  ".join(parts)

    def comparison(self) -> str:
        """The value against the threshold in human units: `p99 612 ms > 150 ms (baseline
        48.2 ms)` while breaching, `p99 90.1 ms, not > 150 ms` once recovered."""
        value = format_signal_value(self.signal, self.value)
        threshold = format_signal_value(self.signal, self.threshold)
        if self.state in (RESOLVED, CANCELLED):
            text = f"{self.signal} {value}, not {self.condition} {threshold}"
        else:
            text = f"{self.signal} {value} {self.condition} {threshold}"
        if self.rule_type == "anomaly":
            text += f" (baseline {format_signal_value(self.signal, self.baseline)})"
        return text
