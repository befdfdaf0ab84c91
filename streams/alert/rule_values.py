"""The signals an alert rule watches, and the values of a rule checked one key at a time:
durations, error rates, throughputs, counts, choices and labels. Each raises RuleError naming the
key and the form it takes."""

from __future__ import annotations

import math
import re
from typing import Any

from streams.aggregate.merge import PERCENTILE_SIGNALS

QUANTILES = PERCENTILE_SIGNALS
"""The latency signals (ns) and the quantile each one is."""
ERROR_RATE = "error_rate"
THROUGHPUT = "throughput"
SIGNALS = (*QUANTILES, ERROR_RATE, THROUGHPUT)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|µs|ms|s)?\s*$")
_NS_PER_UNIT = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*$")


class RuleError(Exception):
    """A problem in one key of one rule; load_rules turns it into a ConfigError naming both."""


def is_number(value: Any) -> bool:
    """Whether `value` is a finite int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def duration_ns(key: str, raw: Any) -> float:
    """A duration in ns: an integer of ns or a number with a unit (ns, us, ms, s)."""
    if is_number(raw) and raw >= 0:
        return float(raw)
    match = _DURATION.match(raw) if isinstance(raw, str) else None
    if match is None:
        raise RuleError(
            f"invalid {key} {raw!r}; should be a duration: nanoseconds (an integer) or a "
            "number with a unit ns, us, ms or s, e.g. 500ms"
        )
    return float(match.group(1)) * _NS_PER_UNIT[match.group(2) or "ns"]


def error_rate_value(key: str, raw: Any) -> float:
    """An error rate: a fraction between 0 and 1, or a percentage."""
    if is_number(raw) and 0 <= raw <= 1:
        return float(raw)
    match = _PERCENT.match(raw) if isinstance(raw, str) else None
    if match is None or float(match.group(1)) > 100:
        raise RuleError(
            f"invalid {key} {raw!r}; should be an error rate: a fraction between 0 and 1 or a "
            "percentage, e.g. 0.05 or 5%"
        )
    return float(match.group(1)) / 100


def throughput_value(key: str, raw: Any) -> float:
    """A rate in calls per second, 0 or more."""
    if is_number(raw) and raw >= 0:
        return float(raw)
    raise RuleError(f"invalid {key} {raw!r}; should be calls per second, a number >= 0")


def signal_value(signal: str, key: str, raw: Any) -> float:
    """A threshold or floor in the signal's unit: ns, a fraction, or calls per second."""
    if signal in QUANTILES:
        return duration_ns(key, raw)
    if signal == ERROR_RATE:
        return error_rate_value(key, raw)
    return throughput_value(key, raw)


def count_value(key: str, raw: Any, meaning: str) -> int:
    """A whole number of at least 1; `meaning` says what it counts."""
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 1:
        return raw
    raise RuleError(f"invalid {key} {raw!r}; should be a whole number >= 1 ({meaning})")


def choice_value(key: str, raw: Any, valid: tuple[str, ...], hint: str = "") -> str:
    """One of `valid`; `hint` is added to the error."""
    if isinstance(raw, str) and raw in valid:
        return raw
    suffix = f" {hint}" if hint else ""
    raise RuleError(f"invalid {key} {raw!r}; should be one of {', '.join(valid)}{suffix}")


def labels_value(raw: Any) -> tuple[tuple[str, str], ...]:
    """Free labels as sorted (name, value) pairs, the values as strings."""
    if not isinstance(raw, dict):
        raise RuleError(f"invalid labels {raw!r}; should be a mapping of names to strings")
    labels: list[tuple[str, str]] = []
    for key, value in raw.items():
        if not isinstance(key, str) or not key:
            raise RuleError(f"invalid label name {key!r}; should be a non-empty string")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise RuleError(f"invalid label {key} {value!r}; should be a string")
        labels.append((key, str(value)))
    return tuple(sorted(labels))


def unit_hint(signal: str) -> str:
    """What `signal`'s thresholds take, for an error message."""
    if signal in QUANTILES:
        return f"{signal} takes a duration, e.g. 500ms"
    if signal == ERROR_RATE:
        return "error_rate takes a fraction or a percentage, e.g. 0.05 or 5%"
    return "throughput takes calls per second, e.g. 10"
