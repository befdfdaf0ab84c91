"""Settings of aggregation: latency windows and service-graph edges."""

from __future__ import annotations

from dataclasses import dataclass

from streams.config.setting import positive, setting
from streams.errors import ConfigError


@dataclass(frozen=True)
class AggregationConfig:
    """Latency windows (RED per service/operation) and service-graph edges, in event time."""

    window_ms: int = setting(10_000, "tumbling window length, aligned to the epoch")
    allowed_lateness_ms: int = setting(
        30_000, "watermark lag behind the highest span end seen; later spans are counted late"
    )
    partition_idle_ms: int = setting(
        30_000, "a partition quiet this long moves its watermark with wall clock"
    )
    relative_accuracy: float = setting(0.01, "DDSketch relative accuracy of percentiles")
    exemplars: int = setting(5, "slowest trace ids kept per window")
    emit_interval_ms: int = setting(1_000, "how often closed windows and watermarks are sent")

    def validate(self) -> None:
        """Raise ConfigError naming the first bad key."""
        for name in ("window_ms", "partition_idle_ms", "emit_interval_ms"):
            positive("aggregation", name, getattr(self, name))
        if self.allowed_lateness_ms < 0:
            raise ConfigError(
                "invalid aggregation.allowed_lateness_ms: should be >= 0 "
                "(set TRACEPIPE_AGGREGATION_ALLOWED_LATENESS_MS)"
            )
        if not 0.0 < self.relative_accuracy < 1.0:
            raise ConfigError(
                f"invalid aggregation.relative_accuracy: {self.relative_accuracy}; should be "
                "between 0 and 1, e.g. 0.01 (set TRACEPIPE_AGGREGATION_RELATIVE_ACCURACY)"
            )
        if self.exemplars < 0:
            raise ConfigError(
                "invalid aggregation.exemplars: should be >= 0 "
                "(set TRACEPIPE_AGGREGATION_EXEMPLARS)"
            )
