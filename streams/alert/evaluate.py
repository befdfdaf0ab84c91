"""Rule evaluation on final latency windows: one alert per (rule, service, operation).

An operation's window (all span kinds and status classes merged) is evaluated by every rule
whose selector matches it, unless it has fewer than the rule's `min_count` calls (such a window
counts neither as breaching nor as healthy). A window breaches when its signal compared with the
threshold holds; for anomaly rules the threshold is max(factor * baseline, floor), the baseline
being the median of the signal over the last `baseline_windows` healthy windows (breaching
windows never enter it, so an incident does not become the new normal; before
`min_baseline_windows` of them there is no verdict and the window counts as healthy).

Lifecycle of an alert, one event (alert.avsc record) per transition:

    inactive --breach--> pending --`for` consecutive breaching windows--> firing
    pending --`resolve_for` consecutive healthy windows--> cancelled (back to inactive)
    firing  --`resolve_for` consecutive healthy windows--> resolved  (back to inactive)

A rule with `for: 1` goes from inactive to firing in one window and emits only the firing event
(pending means waiting for more windows, and there is none to wait for). A healthy window resets
the breaching streak and a breaching one the healthy streak, but neither ends a pending alert
early: input that alternates breaching and healthy windows stays pending (one event) instead of
producing a storm of pending/cancelled or firing/resolved pairs.

The state of every alert is an `AlertState` the caller persists (`take_changed`) and hands back
after a restart (`restore`). A window that does not start after the state's last evaluated
window is ignored, so windows seen again after a restart neither re-fire nor count twice.
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.aggregate.merge import FinalWindow
from streams.aggregate.sketch import LatencySketch
from streams.aggregate.stats import WindowStats
from streams.alert.events import CANCELLED, FIRING, PENDING, RESOLVED
from streams.alert.rule_values import ERROR_RATE, QUANTILES, THROUGHPUT
from streams.alert.rules import ANOMALY, Rule, RuleSet

INACTIVE = "inactive"
"""The state of an alert that is neither pending nor firing (never in an event)."""


@dataclass(frozen=True)
class OperationWindow:
    """One operation's final window, every span kind and status class merged."""

    service: str
    operation: str
    window_start_unix_nano: int
    window_end_unix_nano: int
    count: int
    errors: int
    sketch: LatencySketch
    min_ns: int
    max_ns: int
    exemplar_trace_ids: list[str] = field(default_factory=list)
    """The slowest traces of the window, slowest first, each once."""

    def signal(self, name: str) -> float:
        """p50..p99 in ns (within the window's min and max), error_rate (errors / calls) or
        throughput (calls per second)."""
        quantile = QUANTILES.get(name)
        if quantile is not None:
            if self.count == 0:
                return 0.0
            return self.sketch.quantile(quantile, (self.min_ns, self.max_ns))
        if name == ERROR_RATE:
            return self.errors / self.count if self.count else 0.0
        if name == THROUGHPUT:
            seconds = (self.window_end_unix_nano - self.window_start_unix_nano) / 1e9
            return self.count / seconds if seconds > 0 else 0.0
        raise ValueError(
            f"unknown signal {name!r}; should be one of {', '.join(QUANTILES)}, "
            f"{ERROR_RATE}, {THROUGHPUT}"
        )


def operation_windows(finals: Sequence[FinalWindow], exemplar_count: int) -> list[OperationWindow]:
    """Merge final latency windows (keyed service, operation, kind, status class) per window
    and operation, sorted by window, service and operation; the inputs are left untouched."""
    groups: dict[tuple[int, int, str, str], list[FinalWindow]] = {}
    for final in finals:
        service, operation = final.key[0], final.key[1]
        slot = (final.window_start_unix_nano, final.window_end_unix_nano, service, operation)
        groups.setdefault(slot, []).append(final)
    merged: list[OperationWindow] = []
    for (start, end, service, operation), group in sorted(groups.items(), key=lambda g: g[0]):
        stats = WindowStats(sketch=LatencySketch(group[0].stats.sketch.relative_accuracy))
        for final in group:
            stats.merge(final.stats, exemplar_count)
        # From every exemplar of the group, not the merged k: one slow trace can hold several.
        exemplars = sorted((e for f in group for e in f.stats.exemplars), reverse=True)
        trace_ids = list(dict.fromkeys(e.trace_id for e in exemplars))[:exemplar_count]
        merged.append(
            OperationWindow(
                service=service,
                operation=operation,
                window_start_unix_nano=start,
                window_end_unix_nano=end,
                count=stats.count,
                errors=stats.errors,
                sketch=stats.sketch,
                min_ns=stats.min_ns,
                max_ns=stats.max_ns,
                exemplar_trace_ids=trace_ids,
            )
        )
    return merged


def fingerprint(rule_name: str, service: str, operation: str) -> str:
    """The alert's stable id: 16 hex of SHA-256 over rule name, service and operation."""
    identity = "\x00".join((rule_name, service, operation)).encode()
    return hashlib.sha256(identity).hexdigest()[:16]


@dataclass
class AlertState:
    """What the evaluator remembers of one alert between windows (pickled by the caller)."""

    rule: str
    service: str
    operation: str
    state: str = INACTIVE
    """inactive, pending or firing."""
    breaching_windows: int = 0
    """Consecutive breaching windows, up to the last evaluated one."""
    healthy_windows: int = 0
    """Consecutive healthy windows, up to the last evaluated one."""
    starts_at_unix_nano: int = 0
    """Start of the incident's first breaching window (0 while inactive)."""
    last_window_start_unix_nano: int | None = None
    """Start of the last evaluated window; windows not after it are ignored."""
    sequence: int = 0
    """Transitions emitted so far."""
    baseline: list[float] = field(default_factory=list)
    """Anomaly rules: the signal of the latest healthy windows, oldest first."""


class AlertEvaluator:
    """Evaluates the rules on operation windows and emits an event per alert transition.

    `rules` is a RuleSet or a callable returning the rules in force (asked once per window, so
    a reloaded file takes effect at the next window); `now()` gives `emitted_at_unix_nano`.
    """

    def __init__(self, rules: RuleSet | Callable[[], RuleSet], now: Callable[[], int]) -> None:
        self._rules: Callable[[], RuleSet] = (
            (lambda: rules) if isinstance(rules, RuleSet) else rules
        )
        self.now = now
        self._states: dict[str, AlertState] = {}
        self._changed: dict[str, AlertState] = {}
        self._matching_for: RuleSet | None = None
        self._matching: dict[tuple[str, str], list[Rule]] = {}

    def restore(self, states: Mapping[str, AlertState]) -> None:
        """Start again from persisted states (by fingerprint), after a restart or a rebalance:
        alerts of partitions owned elsewhere now are forgotten."""
        self._states = dict(states)

    def state(self, alert_fingerprint: str) -> AlertState | None:
        """The state of one alert, if it was ever evaluated."""
        return self._states.get(alert_fingerprint)

    def take_changed(self) -> dict[str, AlertState]:
        """The states changed since the last call, by fingerprint, for the caller to persist."""
        changed, self._changed = self._changed, {}
        return changed

    def _rules_for(self, service: str, operation: str) -> list[Rule]:
        rules = self._rules()
        if rules is not self._matching_for:
            self._matching_for, self._matching = rules, {}
        found = self._matching.get((service, operation))
        if found is None:
            found = self._matching[(service, operation)] = rules.matching(service, operation)
        return found

    def evaluate(self, window: OperationWindow) -> list[dict[str, Any]]:
        """Evaluate every matching rule on one window; the alert.avsc records of the transitions
        it caused (attribution and error origins left empty for the caller to fill)."""
        events: list[dict[str, Any]] = []
        for rule in self._rules_for(window.service, window.operation):
            if window.count < rule.min_count:
                continue
            key = fingerprint(rule.name, window.service, window.operation)
            state = self._states.get(key)
            if state is None:
                state = AlertState(rule.name, window.service, window.operation)
            last = state.last_window_start_unix_nano
            if last is not None and window.window_start_unix_nano <= last:
                continue  # seen before: a redelivery or a replay after a restart
            event = self._step(rule, key, state, window)
            if event is not None:
                events.append(event)
            state.last_window_start_unix_nano = window.window_start_unix_nano
            self._states[key] = self._changed[key] = state
        return events

    def _step(
        self, rule: Rule, key: str, state: AlertState, window: OperationWindow
    ) -> dict[str, Any] | None:
        """Advance one alert by one window; the event of the transition, if any."""
        value = window.signal(rule.signal)
        baseline = 0.0
        if rule.rule_type == ANOMALY:
            history = state.baseline[-rule.baseline_windows :]
            if len(history) >= rule.min_baseline_windows:
                baseline = statistics.median(history)
                threshold = max(rule.factor * baseline, rule.floor)
                breaching = value > threshold
            else:  # no verdict yet: counts as healthy
                threshold = rule.floor
                breaching = False
        else:
            threshold = rule.threshold
            breaching = rule.breaches(value, threshold)

        transition: str | None = None
        if breaching:
            state.breaching_windows += 1
            state.healthy_windows = 0
            if state.state == INACTIVE:
                state.starts_at_unix_nano = window.window_start_unix_nano
                transition = PENDING
            if state.state != FIRING and state.breaching_windows >= rule.for_windows:
                transition = FIRING
        else:
            state.healthy_windows += 1
            state.breaching_windows = 0
            if rule.rule_type == ANOMALY:
                state.baseline.append(value)
                del state.baseline[: -rule.baseline_windows]
            if state.state != INACTIVE and state.healthy_windows >= rule.resolve_for_windows:
                transition = RESOLVED if state.state == FIRING else CANCELLED
        if transition is None:
            return None

        state.sequence += 1
        ended = transition in (RESOLVED, CANCELLED)
        event = {
            "fingerprint": key,
            "rule": rule.name,
            "rule_type": rule.rule_type,
            "state": transition,
            "severity": rule.severity,
            "labels": dict(rule.labels),
            "service": window.service,
            "operation": window.operation,
            "signal": rule.signal,
            "condition": rule.condition,
            "value": float(value),
            "threshold": float(threshold),
            "baseline": float(baseline),
            "window_start_unix_nano": window.window_start_unix_nano,
            "window_end_unix_nano": window.window_end_unix_nano,
            "starts_at_unix_nano": state.starts_at_unix_nano,
            "ends_at_unix_nano": window.window_end_unix_nano if ended else 0,
            "sequence": state.sequence,
            "exemplar_trace_ids": [] if ended else list(window.exemplar_trace_ids),
            "attribution": [],
            "emitted_at_unix_nano": self.now(),
            "error_origins": [],
        }
        if ended:
            state.state = INACTIVE
            state.starts_at_unix_nano = 0
        else:
            state.state = transition
        return event
