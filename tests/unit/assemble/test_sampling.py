"""TailSampler: each policy, determinism by trace id, the rate limit on a driven clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.assemble.sampling import (
    SamplingDecision,
    TailSampler,
    TokenBucket,
    parse_latency_thresholds,
    trace_id_fraction,
)
from streams.config import SamplingConfig
from streams.errors import ConfigError

MS = 1_000_000
S = 1_000_000_000
IDS = [f"{i:032x}" for i in range(2000)]


class Clock:
    """A clock that only moves when told."""

    def __init__(self) -> None:
        self.ns = 1_700_000_000 * S

    def __call__(self) -> int:
        return self.ns


def sampler(clock: Clock | None = None, **values: object) -> TailSampler:
    config = SamplingConfig(**{"enabled": True, **values})  # type: ignore[arg-type]
    config.validate()
    return TailSampler(config, clock or Clock())


def test_sampling_off_keeps_everything() -> None:
    off = TailSampler(SamplingConfig(enabled=False, probability=0.0), Clock())
    assert off.decide(IDS[0], 0, 0, "GET /") == SamplingDecision(True, "sampling_off")


def test_errors_are_kept_unless_told_otherwise() -> None:
    assert sampler(probability=0.0).decide(IDS[0], 0, 1, "op") == SamplingDecision(True, "error")
    assert sampler(probability=0.0, keep_errors=False).decide(IDS[0], 0, 1, "op").policy == (
        "dropped"
    )


def test_latency_default_and_per_root_operation() -> None:
    s = sampler(probability=0.0, latency_threshold_ms=100, latency_thresholds="GET /slow=500")
    assert s.decide(IDS[0], 100 * MS, 0, "other").policy == "dropped"
    assert s.decide(IDS[0], 100 * MS + 1, 0, "other") == SamplingDecision(True, "latency")
    assert s.decide(IDS[0], 400 * MS, 0, "GET /slow").policy == "dropped"
    assert s.decide(IDS[0], 500 * MS + 1, 0, "GET /slow").policy == "latency"


def test_error_outranks_latency() -> None:
    assert sampler(latency_threshold_ms=1).decide(IDS[0], S, 2, "op").policy == "error"


def test_probabilistic_share_is_close_to_probability() -> None:
    s = sampler(probability=0.25)
    kept = sum(s.decide(t, 0, 0, "op").keep for t in IDS)
    assert 0.20 * len(IDS) < kept < 0.30 * len(IDS)
    assert {s.decide(t, 0, 0, "op").policy for t in IDS} == {"probabilistic", "dropped"}


def test_probability_bounds() -> None:
    assert not any(sampler(probability=0.0).decide(t, 0, 0, "op").keep for t in IDS)
    assert all(sampler(probability=1.0).decide(t, 0, 0, "op").keep for t in IDS)


@given(st.text(min_size=1, max_size=40), st.floats(0.0, 1.0))
def test_decision_is_the_same_in_every_instance(trace_id: str, probability: float) -> None:
    first = sampler(probability=probability).decide(trace_id, 0, 0, "op")
    second = sampler(probability=probability).decide(trace_id, 0, 0, "op")
    assert first == second
    assert 0.0 <= trace_id_fraction(trace_id) < 1.0


def test_fraction_is_pinned_across_releases() -> None:
    # A change here re-samples every stored trace differently: do it only on purpose.
    assert trace_id_fraction("0af7651916cd43dd8448eb211c80319c") == pytest.approx(
        trace_id_fraction("0AF7651916CD43DD8448EB211C80319C")
    )
    assert round(trace_id_fraction("0af7651916cd43dd8448eb211c80319c"), 6) == 0.560433


def test_rate_limit_applies_to_the_probabilistic_share_only() -> None:
    clock = Clock()
    s = sampler(clock, probability=1.0, rate_limit_per_s=2.0, latency_threshold_ms=1000)
    decisions = [s.decide(t, 0, 0, "op").policy for t in IDS[:4]]
    assert decisions == ["probabilistic", "probabilistic", "rate_limited", "rate_limited"]
    # Errors and slow traces are never rate limited.
    assert s.decide(IDS[5], 0, 1, "op").policy == "error"
    assert s.decide(IDS[6], 2 * S, 0, "op").policy == "latency"
    clock.ns += S // 2
    assert s.decide(IDS[7], 0, 0, "op").policy == "probabilistic"
    assert s.decide(IDS[8], 0, 0, "op").policy == "rate_limited"
    clock.ns += 10 * S
    # Refill stops at the burst size.
    assert [s.decide(t, 0, 0, "op").keep for t in IDS[10:13]] == [True, True, False]


def test_token_bucket_below_one_per_second() -> None:
    clock = Clock()
    bucket = TokenBucket(0.5, clock)
    assert bucket.take() and not bucket.take()
    clock.ns += S
    assert not bucket.take()
    clock.ns += S
    assert bucket.take()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("GET /=250", {"GET /": 250}),
        (" a=1 , b = 20 ,", {"a": 1, "b": 20}),
        ("q?x=y=30", {"q?x=y": 30}),
    ],
)
def test_threshold_parsing(text: str, expected: dict[str, int]) -> None:
    assert parse_latency_thresholds(text) == expected


@pytest.mark.parametrize("text", ["a", "=5", "a=", "a=1.5", "a=-3", "a=1,b"])
def test_bad_thresholds_name_the_key(text: str) -> None:
    with pytest.raises(ConfigError, match=r"sampling\.latency_thresholds"):
        parse_latency_thresholds(text)
