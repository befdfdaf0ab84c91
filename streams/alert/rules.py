"""Alert rules: which signal of which operations to watch, and when it counts as breaching.

Rules come from a YAML file (`alert.rules_file`; empty: the built-in
deploy/alerts/default-rules.yaml). Every key is checked, unknown keys included: a typo must not
silently disable an alert. The format (deploy/alerts/rules.example.yaml has commented examples):

    rules:
      - name: checkout-slow          # unique; with service and operation, the alert's identity
        type: threshold              # threshold (default) or anomaly
        selector: {service: "checkout*", operation: "*"}  # fnmatch globs, case-sensitive;
                                                          # both default "*"
        signal: p99                  # p50 p90 p95 p99 (ns), error_rate (0..1), throughput (calls/s)
        condition: ">"               # > >= < <= (quote it: a bare > starts a YAML block scalar)
        threshold: 500ms             # durations: ns integer or "250us", "500ms", "2s";
                                     # error_rate: 0.05 or "5%"; throughput: calls per second
        for: 3                       # consecutive breaching windows before firing (default 1)
        resolve_for: 2               # consecutive healthy windows before resolving (default 2)
        min_count: 20                # windows with fewer calls are not evaluated (default 10;
                                     # throughput rules default 1: a drop in traffic is exactly
                                     # a window with few calls)
        severity: critical           # info, warning (default) or critical
        labels: {team: payments}     # free labels, copied to every event
      - name: latency-anomaly
        type: anomaly                # breaching: value > factor * baseline and value > floor
        signal: p99
        factor: 3                    # default 3; greater than 1
        floor: 50ms                  # required: an absolute minimum, in the signal's unit
        baseline_windows: 30         # baseline: median of the signal over the last N evaluated
                                     # healthy windows (default 30)
        min_baseline_windows: 5      # no anomaly verdict before this many (default 5)
        for: 2

Anomaly rules compare with `>` only; `condition` and `threshold` belong to threshold rules, and
`factor`, `floor`, `baseline_windows`, `min_baseline_windows` to anomaly rules.

`RuleFile` reloads the file when it changes; an invalid edit keeps the previous rules and is
reported in `last_error`.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from streams.alert.rule_values import (
    SIGNALS,
    THROUGHPUT,
    RuleError,
    choice_value,
    count_value,
    is_number,
    labels_value,
    signal_value,
    unit_hint,
)
from streams.errors import ConfigError
from streams.paths import deploy_root
from streams.strict_yaml import load_strict_yaml

THRESHOLD = "threshold"
ANOMALY = "anomaly"
RULE_TYPES = (THRESHOLD, ANOMALY)

CONDITIONS: dict[str, Callable[[float, float], bool]] = {
    ">": lambda value, threshold: value > threshold,
    ">=": lambda value, threshold: value >= threshold,
    "<": lambda value, threshold: value < threshold,
    "<=": lambda value, threshold: value <= threshold,
}
SEVERITIES = ("info", "warning", "critical")

DEFAULT_MIN_COUNT = 10
DEFAULT_THROUGHPUT_MIN_COUNT = 1

_COMMON_KEYS = (
    "name",
    "type",
    "selector",
    "signal",
    "for",
    "resolve_for",
    "min_count",
    "severity",
    "labels",
)
_TYPE_KEYS = {
    THRESHOLD: ("condition", "threshold"),
    ANOMALY: ("factor", "floor", "baseline_windows", "min_baseline_windows"),
}
_SELECTOR_KEYS = ("service", "operation")


@dataclass(frozen=True)
class Selector:
    """The operations a rule watches: fnmatch globs on service and operation (span name)."""

    service: str = "*"
    operation: str = "*"

    def matches(self, service: str, operation: str) -> bool:
        """True when both globs match (case-sensitive, the same on every platform)."""
        return fnmatch.fnmatchcase(service, self.service) and fnmatch.fnmatchcase(
            operation, self.operation
        )


@dataclass(frozen=True)
class Rule:
    """One validated alert rule. Latency values (threshold, floor) are in ns, error rates are
    fractions and throughput is calls per second."""

    name: str
    signal: str
    rule_type: str = THRESHOLD
    selector: Selector = field(default_factory=Selector)
    condition: str = ">"
    threshold: float = 0.0
    factor: float = 3.0
    floor: float = 0.0
    baseline_windows: int = 30
    min_baseline_windows: int = 5
    for_windows: int = 1
    resolve_for_windows: int = 2
    min_count: int = DEFAULT_MIN_COUNT
    severity: str = "warning"
    labels: tuple[tuple[str, str], ...] = ()

    def breaches(self, value: float, threshold: float) -> bool:
        """True when `value` compared with `threshold` by the rule's condition holds."""
        return CONDITIONS[self.condition](value, threshold)


@dataclass(frozen=True)
class RuleSet:
    """The rules in force, in file order; `source` names where they came from."""

    rules: tuple[Rule, ...] = ()
    source: str = ""

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def matching(self, service: str, operation: str) -> list[Rule]:
        """The rules whose selector matches this operation, in file order."""
        return [r for r in self.rules if r.selector.matches(service, operation)]


def _selector(raw: Any) -> Selector:
    if not isinstance(raw, dict):
        raise RuleError(
            f"invalid selector {raw!r}; should be a mapping like "
            '{service: "checkout*", operation: "*"}'
        )
    for key in raw:
        if key not in _SELECTOR_KEYS:
            raise RuleError(f"unknown selector key {key!r}; should be service or operation")
    globs: dict[str, str] = {}
    for key in _SELECTOR_KEYS:
        value = raw.get(key, "*")
        if not isinstance(value, str) or not value:
            raise RuleError(
                f'invalid selector.{key} {value!r}; should be a non-empty glob, e.g. "*" '
                'or "checkout*"'
            )
        globs[key] = value
    return Selector(**globs)


def _rule(raw: dict[str, Any]) -> Rule:
    """One rule from its YAML mapping (its name already checked)."""
    rule_type = choice_value("type", raw.get("type", THRESHOLD), RULE_TYPES)
    allowed = _COMMON_KEYS + _TYPE_KEYS[rule_type]
    for key in raw:
        if key in allowed:
            continue
        other = ANOMALY if rule_type == THRESHOLD else THRESHOLD
        if key in _TYPE_KEYS[other]:
            raise RuleError(
                f"key {key!r} is only for {other} rules (type: {other}); {rule_type} rules "
                f"take {', '.join(_TYPE_KEYS[rule_type])}"
            )
        raise RuleError(f"unknown key {key!r}; should be one of {', '.join(sorted(allowed))}")
    if "signal" not in raw:
        raise RuleError(f"missing key 'signal'; should be one of {', '.join(SIGNALS)}")
    signal = choice_value("signal", raw["signal"], SIGNALS)
    default_min_count = DEFAULT_THROUGHPUT_MIN_COUNT if signal == THROUGHPUT else DEFAULT_MIN_COUNT
    values: dict[str, Any] = {
        "name": raw["name"],
        "signal": signal,
        "rule_type": rule_type,
        "selector": _selector(raw.get("selector", {})),
        "for_windows": count_value(
            "for", raw.get("for", 1), "consecutive breaching windows before firing"
        ),
        "resolve_for_windows": count_value(
            "resolve_for", raw.get("resolve_for", 2), "consecutive healthy windows to resolve"
        ),
        "min_count": count_value(
            "min_count", raw.get("min_count", default_min_count), "calls a window needs"
        ),
        "severity": choice_value("severity", raw.get("severity", "warning"), SEVERITIES),
        "labels": labels_value(raw.get("labels", {})),
    }
    if rule_type == THRESHOLD:
        values["condition"] = choice_value(
            "condition",
            raw.get("condition", ">"),
            tuple(CONDITIONS),
            '(quote it in YAML: condition: ">")',
        )
        if "threshold" not in raw:
            raise RuleError(f"missing key 'threshold'; {unit_hint(signal)}")
        values["threshold"] = signal_value(signal, "threshold", raw["threshold"])
        return Rule(**values)
    factor = raw.get("factor", 3)
    if not is_number(factor) or factor <= 1:
        raise RuleError(
            f"invalid factor {factor!r}; should be a number greater than 1 (fire when the "
            "value exceeds factor times its baseline)"
        )
    if "floor" not in raw:
        raise RuleError(
            "missing key 'floor'; anomaly rules need an absolute floor the value must also "
            f"exceed; {unit_hint(signal)}"
        )
    values["factor"] = float(factor)
    values["floor"] = signal_value(signal, "floor", raw["floor"])
    values["baseline_windows"] = count_value(
        "baseline_windows", raw.get("baseline_windows", 30), "windows in the baseline median"
    )
    values["min_baseline_windows"] = count_value(
        "min_baseline_windows", raw.get("min_baseline_windows", 5), "windows before a verdict"
    )
    if values["min_baseline_windows"] > values["baseline_windows"]:
        raise RuleError(
            f"invalid min_baseline_windows {values['min_baseline_windows']}; should be at most "
            f"baseline_windows ({values['baseline_windows']})"
        )
    return Rule(**values)


def load_rules(text: str, source: str) -> RuleSet:
    """Parse and validate a rules file's text; ConfigError names the rule, the key and the fix.

    `source` names the file in messages.
    """
    try:
        document = load_strict_yaml(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"alert rules ({source}) cannot be parsed: {err}") from err
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        raise ConfigError(
            f"alert rules ({source}): the top level should be a mapping with a 'rules' list "
            "(rules: [] for none)"
        )
    for key in document:
        if key != "rules":
            raise ConfigError(
                f"alert rules ({source}): unknown top-level key {key!r}; should be rules"
            )
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, raw in enumerate(document["rules"], start=1):
        label = f"#{index}"
        if not isinstance(raw, dict):
            raise ConfigError(f"alert rule {label} ({source}): should be a mapping of keys")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise ConfigError(
                f"alert rule {label} ({source}): invalid name {name!r}; should be a non-empty "
                "string without surrounding spaces, unique in the file"
            )
        label = repr(name)
        if name in seen:
            raise ConfigError(
                f"alert rule {label} ({source}): duplicate name; rule names should be unique "
                "(the name is part of each alert's fingerprint)"
            )
        seen.add(name)
        try:
            rules.append(_rule(raw))
        except RuleError as err:
            raise ConfigError(f"alert rule {label} ({source}): {err}") from err
    return RuleSet(tuple(rules), source)


def default_rules_path() -> Path:
    """The built-in rules file: deploy/alerts/default-rules.yaml."""
    return deploy_root() / "alerts" / "default-rules.yaml"


@functools.cache
def default_rules() -> RuleSet:
    """The built-in rules, used when `alert.rules_file` is empty (read once)."""
    path = default_rules_path()
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(
            f"built-in alert rules {path} cannot be read: {err}; set TRACEPIPE_DEPLOY_DIR to "
            "the deploy/ directory, or TRACEPIPE_ALERT_RULES_FILE to your own rules"
        ) from err
    return load_rules(text, str(path))


_Signature = tuple[int, int, int]


class RuleFile:
    """A rules file reloaded when it changes (its inode, mtime or size), checked at most every
    `check_interval_ms` of `now()` (monotonic ns).

    An invalid edit, or a file that disappears, keeps the previous rules and sets `last_error`
    (None again after the next good load); a file missing or invalid at start is a ConfigError.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        check_interval_ms: int = 1_000,
        now: Callable[[], int] = time.monotonic_ns,
        stat: Callable[[Path], os.stat_result] = os.stat,
    ) -> None:
        self.path = Path(path)
        self.check_interval_ns = check_interval_ms * 1_000_000
        self.now = now
        self.stat = stat
        self.last_error: str | None = None
        self.reloads = 0
        """Successful loads after the first."""
        try:
            self._signature = self._read_signature()
            text = self.path.read_text()
        except OSError as err:
            raise ConfigError(
                f"alert rules file {self.path} cannot be read: {err}; fix the path given by "
                "alert.rules_file (TRACEPIPE_ALERT_RULES_FILE)"
            ) from err
        self._rules = load_rules(text, str(self.path))
        self._checked_at_ns = now()

    def _read_signature(self) -> _Signature:
        info = self.stat(self.path)
        return (info.st_ino, info.st_mtime_ns, info.st_size)

    def current(self) -> RuleSet:
        """The rules in force: re-read first if the file changed since the last look."""
        now_ns = self.now()
        if now_ns - self._checked_at_ns < self.check_interval_ns:
            return self._rules
        self._checked_at_ns = now_ns
        try:
            signature = self._read_signature()
            if signature == self._signature:
                return self._rules
            text = self.path.read_text()
        except OSError as err:
            self.last_error = f"alert rules file {self.path} cannot be read: {err}"
            # Read again once it is back, whatever its signature.
            self._signature = (-1, -1, -1)
            return self._rules
        self._signature = signature
        try:
            self._rules = load_rules(text, str(self.path))
        except ConfigError as err:
            self.last_error = str(err)
            return self._rules
        self.last_error = None
        self.reloads += 1
        return self._rules
