"""Tail sampling: which assembled traces' spans are written to otel_traces.

Policies, first match wins: sampling off keeps everything; a trace with an error span is kept
("error", if keep_errors); a trace slower than its root operation's threshold, else
latency_threshold_ms, is kept ("latency"); of the rest a share `probability` is kept
("probabilistic"), chosen by a hash of the trace id so every worker and every re-emitted version
agrees, and optionally capped by a token bucket on the injected clock ("rate_limited": the cap
applies to the probabilistic share only, and is per process, so it alone is not deterministic).

Sampling decides storage only: latency aggregates are always computed on 100% of spans, never
on the sample.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from streams.config import SamplingConfig
from streams.errors import ConfigError

Policy = Literal["error", "latency", "probabilistic", "rate_limited", "dropped", "sampling_off"]
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
_HASH_SPACE = 1 << 64


@dataclass(frozen=True, slots=True)
class SamplingDecision:
    """Whether to keep a trace, and the policy that decided."""

    keep: bool
    policy: Policy


def parse_latency_thresholds(text: str) -> dict[str, int]:
    """'op=ms,op2=ms' as {operation: milliseconds}; the last '=' splits, so names may hold '='."""
    out: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        op, sep, ms = item.rpartition("=")
        op, ms = op.strip(), ms.strip()
        if not sep or not op or not ms.isdigit():
            raise ConfigError(
                f"invalid sampling.latency_thresholds item {item!r}; should be "
                "'operation=milliseconds' (set TRACEPIPE_SAMPLING_LATENCY_THRESHOLDS)"
            )
        out[op] = int(ms)
    return out


def trace_id_fraction(trace_id: str) -> float:
    """A stable number in [0, 1) for a trace id, the same in every process and run."""
    # Not the id's own low bits: 64-bit (Zipkin) and hand-made ids are not uniformly random.
    digest = hashlib.blake2b(trace_id.lower().encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _HASH_SPACE


class TokenBucket:
    """At most `rate_per_s` takes per second on average, bursts up to max(1, rate_per_s)."""

    def __init__(self, rate_per_s: float, now: Callable[[], int]) -> None:
        self._rate_per_ns = rate_per_s / NS_PER_S
        self._capacity = max(1.0, rate_per_s)
        self._tokens = self._capacity
        self._clock = now
        self._last_ns = now()

    def take(self) -> bool:
        """Take one token if there is one."""
        now = self._clock()
        if now > self._last_ns:
            self._tokens = min(
                self._capacity, self._tokens + (now - self._last_ns) * self._rate_per_ns
            )
            self._last_ns = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class TailSampler:
    """Decides per assembled trace; one instance per worker process."""

    def __init__(self, config: SamplingConfig, now: Callable[[], int]) -> None:
        self._config = config
        self._default_threshold_ns = config.latency_threshold_ms * NS_PER_MS
        parsed = parse_latency_thresholds(config.latency_thresholds)
        self._thresholds_ns = {op: ms * NS_PER_MS for op, ms in parsed.items()}
        self._bucket = (
            TokenBucket(config.rate_limit_per_s, now) if config.rate_limit_per_s > 0 else None
        )

    def threshold_ns(self, root_operation: str) -> int:
        """The latency threshold for traces whose root span has this name."""
        return self._thresholds_ns.get(root_operation, self._default_threshold_ns)

    def decide(
        self, trace_id: str, duration_ns: int, error_count: int, root_operation: str
    ) -> SamplingDecision:
        """Keep or drop one trace (duration: earliest span start to latest span end)."""
        config = self._config
        if not config.enabled:
            return SamplingDecision(True, "sampling_off")
        if config.keep_errors and error_count > 0:
            return SamplingDecision(True, "error")
        if duration_ns > self.threshold_ns(root_operation):
            return SamplingDecision(True, "latency")
        if trace_id_fraction(trace_id) >= config.probability:
            return SamplingDecision(False, "dropped")
        if self._bucket is not None and not self._bucket.take():
            return SamplingDecision(False, "rate_limited")
        return SamplingDecision(True, "probabilistic")
