"""Times of queries: the --since/--until forms (a duration ago, now, ISO 8601) read into unix ns,
and times and durations written back the way people and parse_time read them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_DURATION_NS = {
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
    "w": 604_800_000_000_000,
}


def parse_time(text: str, now_ns: int) -> int:
    """A point in time as unix ns: a duration ago (``90s``, ``15m``, ``1h30m``, ``7d``, ``2w``),
    ``now``, or an ISO 8601 time (UTC unless it carries an offset). ValueError names the forms."""
    value = text.strip()
    if value == "now":
        return now_ns
    if value and _DURATION_PART.sub("", value) == "":
        ago = sum(int(n) * _DURATION_NS[unit] for n, unit in _DURATION_PART.findall(value))
        return now_ns - ago
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"invalid time {text!r}: use a duration ago (90s, 15m, 1h30m, 7d), now, or an "
            "ISO 8601 time such as 2026-01-02T15:04:05Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1_000


def resolve_range(since: str, until: str, now_ns: int, flag: str = "") -> tuple[int, int]:
    """[since, until) in unix ns from two parse_time texts; ValueError when since is not before
    until (`flag` prefixes the names in the message: "--" for the CLI's options)."""
    since_ns, until_ns = parse_time(since, now_ns), parse_time(until, now_ns)
    if since_ns >= until_ns:
        raise ValueError(
            f"{flag}since {since} ({format_time(since_ns)}) is not before {flag}until {until} "
            f"({format_time(until_ns)})"
        )
    return since_ns, until_ns


def format_duration(duration_ns: int) -> str:
    """A duration the way parse_time reads one: ``1m40s``, ``2h``, ``1d3h``; ``500ms`` below a
    second."""
    if duration_ns < 1_000_000_000:
        return f"{duration_ns // 1_000_000}ms"
    left = duration_ns // 1_000_000_000
    parts = []
    for unit, seconds in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        amount, left = divmod(left, seconds)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


def format_time(time_unix_nano: int) -> str:
    """A unix-ns time as ``2026-01-02 15:04:05Z`` (UTC, whole seconds)."""
    return f"{datetime.fromtimestamp(time_unix_nano // 1_000_000_000, UTC):%Y-%m-%d %H:%M:%S}Z"
