"""Settings of the span sink: batching and retry of otel_traces inserts."""

from __future__ import annotations

from dataclasses import dataclass

from streams.config.setting import positive, setting
from streams.errors import ConfigError


@dataclass(frozen=True)
class SpanSinkConfig:
    """Batching and retry of the span sink (tracepipe.spans -> otel_traces)."""

    batch_max_spans: int = setting(
        50_000, "most spans per otel_traces insert (stored at once when this many wait)"
    )
    flush_interval_ms: int = setting(
        1000, "longest a span waits for its otel_traces insert (batches are stored together)"
    )
    # A batch is handled in one go on the event loop: 50 span batches of 500 spans take about
    # a second, 200 took several (health checks and the sweep waited meanwhile).
    batch_max_messages: int = setting(
        50, "Kafka messages per agent batch (each one span or a span batch of up to ~500)"
    )
    batch_max_wait_ms: int = setting(500, "longest wait to fill a batch")
    retry_initial_backoff_ms: int = setting(
        200, "first retry delay of a failed insert (doubles each time)"
    )
    retry_max_backoff_ms: int = setting(30_000, "longest retry delay of a failed insert")

    def validate(self) -> None:
        """Raise ConfigError naming the first bad key."""
        positive("sink", "batch_max_spans", self.batch_max_spans)
        positive("sink", "batch_max_messages", self.batch_max_messages)
        positive("sink", "batch_max_wait_ms", self.batch_max_wait_ms)
        positive("sink", "flush_interval_ms", self.flush_interval_ms)
        positive("sink", "retry_initial_backoff_ms", self.retry_initial_backoff_ms)
        if self.retry_max_backoff_ms < self.retry_initial_backoff_ms:
            raise ConfigError(
                "invalid sink.retry_max_backoff_ms: should be >= sink.retry_initial_backoff_ms "
                "(set TRACEPIPE_SINK_RETRY_MAX_BACKOFF_MS)"
            )
