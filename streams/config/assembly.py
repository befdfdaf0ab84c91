"""Settings of trace assembly and of the tail sampling of assembled traces."""

from __future__ import annotations

from dataclasses import dataclass

from streams.config.setting import positive, setting
from streams.errors import ConfigError


@dataclass(frozen=True)
class AssemblyConfig:
    """Trace assembly: session windows per trace id, their bounds, and late spans."""

    trace_idle_ms: int = setting(5_000, "emit a trace after no span arrived for this long")
    trace_max_age_ms: int = setting(60_000, "emit a trace at this age since its first span")
    max_open_traces: int = setting(100_000, "open traces held; the oldest are emitted early")
    max_spans_per_trace: int = setting(
        10_000, "spans held per trace; more are stored and counted, not held"
    )
    late_retention_ms: int = setting(
        600_000, "how long an emitted trace is remembered to re-emit it with late spans"
    )
    max_retained_traces: int = setting(
        100_000, "emitted traces remembered for late spans; past it the oldest are forgotten"
    )
    tombstone_retention_ms: int = setting(
        3_600_000, "after late retention, how long a trace's last version is remembered"
    )
    max_tombstones: int = setting(
        1_000_000, "forgotten traces' last versions remembered; past it the oldest go first"
    )
    sweep_interval_ms: int = setting(250, "how often open traces are checked for emission")
    early_emission: bool = setting(
        True,
        "emit a trace at the first sweep after it is whole (root, every parent and usually "
        "reported server half held, its root operation's usual span count), not trace_idle_ms "
        "after its last span",
    )
    include_spans: bool = setting(
        False,
        "trace records on tracepipe.traces carry full spans, for consumers of that topic (off: "
        "span ids only; tracepipe's own stages need neither)",
    )

    def validate(self) -> None:
        """Raise ConfigError naming the first bad key."""
        for name in (
            "max_retained_traces",
            "tombstone_retention_ms",
            "max_tombstones",
            "trace_idle_ms",
            "trace_max_age_ms",
            "max_open_traces",
            "max_spans_per_trace",
            "late_retention_ms",
            "sweep_interval_ms",
        ):
            positive("assembly", name, getattr(self, name))
        if self.trace_max_age_ms < self.trace_idle_ms:
            raise ConfigError(
                "invalid assembly.trace_max_age_ms: should be >= assembly.trace_idle_ms "
                "(set TRACEPIPE_ASSEMBLY_TRACE_MAX_AGE_MS)"
            )


@dataclass(frozen=True)
class SamplingConfig:
    """Tail sampling of otel_traces writes; latency aggregates always see every span."""

    enabled: bool = setting(False, "write only sampled traces' spans to otel_traces")
    keep_errors: bool = setting(True, "keep every trace with an error span")
    latency_threshold_ms: int = setting(1_000, "keep traces slower than this")
    latency_thresholds: str = setting(
        "", "per root operation thresholds, 'op=ms,op2=ms' (override latency_threshold_ms)"
    )
    probability: float = setting(0.1, "share of the remaining traces kept (0..1)")
    rate_limit_per_s: float = setting(0.0, "most traces kept per second by probability (0: off)")

    def validate(self) -> None:
        """Raise ConfigError naming the first bad key."""
        if not 0.0 <= self.probability <= 1.0:
            raise ConfigError(
                f"invalid sampling.probability: {self.probability}; should be between 0 and 1 "
                "(set TRACEPIPE_SAMPLING_PROBABILITY)"
            )
        positive("sampling", "latency_threshold_ms", self.latency_threshold_ms)
        if self.rate_limit_per_s < 0:
            raise ConfigError(
                "invalid sampling.rate_limit_per_s: should be >= 0 "
                "(set TRACEPIPE_SAMPLING_RATE_LIMIT_PER_S)"
            )
        for item in filter(None, (p.strip() for p in self.latency_thresholds.split(","))):
            op, sep, ms = item.rpartition("=")
            if not sep or not op or not ms.strip().isdigit():
                raise ConfigError(
                    f"invalid sampling.latency_thresholds item {item!r}; should be "
                    "'operation=milliseconds' (set TRACEPIPE_SAMPLING_LATENCY_THRESHOLDS)"
                )
