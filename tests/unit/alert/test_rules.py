"""Alert rules load from YAML; each invalid file gives the error it must; the file hot-reloads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from streams.alert.rules import (
    ANOMALY,
    THRESHOLD,
    Rule,
    RuleFile,
    RuleSet,
    Selector,
    default_rules,
    default_rules_path,
    load_rules,
)
from streams.errors import ConfigError
from streams.paths import deploy_root

TESTDATA = Path(__file__).parents[2] / "testdata" / "alert" / "rules"
EXPECTED_ERRORS: dict[str, str] = json.loads((TESTDATA / "invalid" / "errors.json").read_text())
MS = 1_000_000.0


def load(name: str) -> RuleSet:
    path = TESTDATA / "valid" / name
    return load_rules(path.read_text(), path.name)


def test_full_rules_file() -> None:
    rules = load("full.yaml")
    assert rules.source == "full.yaml"
    assert list(rules) == [
        Rule(
            name="checkout-slow",
            signal="p99",
            rule_type=THRESHOLD,
            selector=Selector("checkout*", "POST /pay*"),
            condition=">=",
            threshold=500 * MS,
            for_windows=3,
            resolve_for_windows=4,
            min_count=20,
            severity="critical",
            labels=(("team", "payments"), ("tier", "1")),
        ),
        Rule(
            name="latency-anomaly",
            signal="p95",
            rule_type=ANOMALY,
            selector=Selector("*", "*"),
            factor=2.5,
            floor=50 * MS,
            baseline_windows=60,
            min_baseline_windows=10,
            for_windows=2,
            resolve_for_windows=3,
            min_count=15,
            severity="info",
            labels=(("source", "anomaly"),),
        ),
    ]


def test_defaults() -> None:
    slow, anomaly = load("minimal.yaml")
    assert slow == Rule(name="slow", signal="p50", threshold=100 * MS)
    assert (slow.selector, slow.condition, slow.severity) == (Selector("*", "*"), ">", "warning")
    assert (slow.for_windows, slow.resolve_for_windows, slow.min_count) == (1, 2, 10)
    assert (anomaly.rule_type, anomaly.factor, anomaly.floor) == (ANOMALY, 3.0, 0.01)
    assert (anomaly.baseline_windows, anomaly.min_baseline_windows) == (30, 5)


def test_threshold_units() -> None:
    got = {rule.name: rule.threshold for rule in load("units.yaml")}
    assert got == {
        "ns-integer": 1_500_000.0,
        "microseconds": 250_000.0,
        "micro-sign": 250_000.0,
        "fractional-ms": 500_000.0,
        "seconds": 2e9,
        "nanoseconds": 750.0,
        "rate-fraction": 0.05,
        "rate-percent": pytest.approx(0.025),
        "throughput": 12.5,
    }


def test_throughput_rules_evaluate_every_window_by_default() -> None:
    (rule,) = load_rules("rules:\n  - {name: t, signal: throughput, threshold: 1}\n", "x")
    assert rule.min_count == 1


def test_no_rules() -> None:
    assert len(load("no_rules.yaml")) == 0


@pytest.mark.parametrize("name", sorted(EXPECTED_ERRORS))
def test_invalid_rules_name_rule_key_and_fix(name: str) -> None:
    path = TESTDATA / "invalid" / name
    with pytest.raises(ConfigError) as info:
        load_rules(path.read_text(), path.name)
    assert EXPECTED_ERRORS[name] in str(info.value)


def test_every_invalid_file_has_an_expected_error() -> None:
    files = {p.name for p in (TESTDATA / "invalid").iterdir() if p.suffix != ".json"}
    assert files == set(EXPECTED_ERRORS)


def test_selector_globs_are_case_sensitive() -> None:
    selector = Selector("shop-*", "GET *")
    assert selector.matches("shop-a", "GET /x")
    assert not selector.matches("Shop-a", "GET /x")
    assert not selector.matches("shop-a", "POST /x")
    rules = load("full.yaml")
    assert [r.name for r in rules.matching("checkout-eu", "POST /pay")] == [
        "checkout-slow",
        "latency-anomaly",
    ]
    assert [r.name for r in rules.matching("cart", "POST /pay")] == ["latency-anomaly"]


def test_shipped_rules_load() -> None:
    assert default_rules_path() == deploy_root() / "alerts" / "default-rules.yaml"
    anomaly, errors = default_rules()
    assert (anomaly.rule_type, anomaly.signal, anomaly.selector) == (ANOMALY, "p99", Selector())
    assert (anomaly.factor, anomaly.floor, anomaly.for_windows) == (3.0, 50 * MS, 2)
    assert (errors.rule_type, errors.signal, errors.condition) == (THRESHOLD, "error_rate", ">")
    assert (errors.threshold, errors.for_windows, errors.min_count) == (0.05, 2, 20)
    example = deploy_root() / "alerts" / "rules.example.yaml"
    assert len(load_rules(example.read_text(), example.name)) >= 4


# Hot reload.


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.ns = 0

    def __call__(self) -> int:
        return self.ns


SLOW = "rules:\n  - {name: slow, signal: p99, threshold: 500ms}\n"
SLOWER = "rules:\n  - {name: slow, signal: p99, threshold: 800ms, for: 2}\n"


def rewrite(path: Path, text: str) -> None:
    """Write and move the mtime on, as an editor's save a moment later would."""
    before = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


def test_changed_file_is_reloaded_after_the_check_interval(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(SLOW)
    clock = Clock()
    rules_file = RuleFile(path, check_interval_ms=1_000, now=clock)
    first = rules_file.current()
    assert [r.threshold for r in first] == [500 * MS]
    assert rules_file.current() is first  # unchanged: the same object, not re-read

    rewrite(path, SLOWER)
    clock.ns += 999_000_000
    assert rules_file.current() is first  # not looked at yet
    clock.ns += 1_000_000
    (rule,) = rules_file.current()
    assert (rule.threshold, rule.for_windows) == (800 * MS, 2)
    assert (rules_file.last_error, rules_file.reloads) == (None, 1)


def test_broken_edit_keeps_the_previous_rules_and_says_why(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(SLOW)
    rules_file = RuleFile(path, check_interval_ms=0)
    good = rules_file.current()

    rewrite(path, SLOW.replace("p99", "p98"))
    assert rules_file.current() is good
    assert rules_file.last_error is not None
    assert "alert rule 'slow'" in rules_file.last_error
    assert "invalid signal 'p98'" in rules_file.last_error
    assert rules_file.current() is good  # the same broken file is not re-read
    assert rules_file.last_error is not None

    rewrite(path, SLOWER)
    assert [r.threshold for r in rules_file.current()] == [800 * MS]
    assert rules_file.last_error is None


def test_vanished_file_keeps_the_previous_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(SLOW)
    rules_file = RuleFile(path, check_interval_ms=0)
    good = rules_file.current()
    path.unlink()
    assert rules_file.current() is good
    assert rules_file.last_error is not None and "cannot be read" in rules_file.last_error
    path.write_text(SLOW)  # back with the same content (and maybe the same mtime and size)
    assert rules_file.current() == good
    assert rules_file.last_error is None


def test_atomic_replace_is_seen(tmp_path: Path) -> None:
    # Kubernetes ConfigMaps and many editors swap in a new file: a new inode.
    path = tmp_path / "rules.yaml"
    path.write_text(SLOW)
    rules_file = RuleFile(path, check_interval_ms=0)
    staged = tmp_path / "rules.yaml.new"
    staged.write_text(SLOW.replace("500ms", "600ms"))
    stat = path.stat()
    os.utime(staged, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime and size
    staged.replace(path)
    assert [r.threshold for r in rules_file.current()] == [600 * MS]


def test_missing_or_invalid_file_at_start_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot be read.*TRACEPIPE_ALERT_RULES_FILE"):
        RuleFile(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules:\n  - {name: x, signal: p98, threshold: 1}\n")
    with pytest.raises(ConfigError, match=r"alert rule 'x' \(.*broken.yaml\): invalid signal"):
        RuleFile(broken)
