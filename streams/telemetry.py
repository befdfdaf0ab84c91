"""Counters every stage increments, served by the worker at /metrics in Prometheus text format."""

from __future__ import annotations

import threading
from collections.abc import Mapping

LabelSet = tuple[tuple[str, str], ...]


class Counters:
    """Monotonic counters keyed by name and labels; safe to bump from the sink's writer thread."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, LabelSet], int] = {}
        self._help: dict[str, str] = {}
        self._lock = threading.Lock()

    def describe(self, name: str, help_text: str) -> None:
        """Attach the HELP line shown for a counter."""
        self._help[name] = help_text

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        """Add `amount` to the counter `name` with these labels."""
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def value(self, name: str, **labels: str) -> int:
        """The current value (0 if never incremented)."""
        return self._values.get((name, tuple(sorted(labels.items()))), 0)

    def total(self, name: str) -> int:
        """The sum over every label set of `name`."""
        with self._lock:
            return sum(v for (n, _), v in self._values.items() if n == name)

    def snapshot(self) -> dict[str, dict[str, int]]:
        """{name: {"label=value,...": count}} for JSON stats."""
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for (name, labels), value in sorted(self._values.items()):
                out.setdefault(name, {})[",".join(f"{k}={v}" for k, v in labels)] = value
        return out

    def render_prometheus(self) -> str:
        """The Prometheus text exposition of every counter."""
        lines: list[str] = []
        seen: set[str] = set()
        with self._lock:
            items = sorted(self._values.items())
        for (name, labels), value in items:
            if name not in seen:
                seen.add(name)
                if name in self._help:
                    lines.append(f"# HELP {name} {self._help[name]}")
                lines.append(f"# TYPE {name} counter")
            lines.append(f"{name}{_render_labels(dict(labels))} {value}")
        return "\n".join(lines) + "\n"


def _render_labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    body = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in labels.items()
    )
    return "{" + body + "}"
