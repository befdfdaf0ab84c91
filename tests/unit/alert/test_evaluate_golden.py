"""Golden alert scenarios: tests/testdata/alert/scenarios/*.json hold rules, windows and the
alert events they must produce, driven with an injected clock.

A scenario is {"description", "rules", "window_s" (default 10), "steps", "expected"}:

- `rules` is the rules file, as YAML text or as the same structure in JSON.
- A step is a window of one operation: {"service", "operation", "start_s" (relative to BASE_NS),
  "count", "errors", and "latency_ms" (every call that long; a list is cycled over repeats) or
  "durations_ms" (the calls)}, with "repeat": n for n consecutive windows. Its calls become
  final windows split by status class (the first `errors` calls are errors), each with its three
  slowest calls as exemplars, and go through `operation_windows` like the agent's batches.
  {"restart": true} stands for a worker restart: a new evaluator restores the states persisted
  so far (pickled, as the agent's table holds them).
- An expected event lists the fields to check: state, rule, service, operation,
  window_start_s, and optionally starts_at_s, ends_at_s, sequence, exemplars (how many),
  value_ms / threshold_ms / baseline_ms (latency rules) or value / threshold / baseline
  (within 2%: percentiles come from the sketch).

The clock reads the window's end plus one second while a window is evaluated; every event must
carry that as emitted_at, name the fingerprint of its rule, service and operation, and encode
with schemas/avro/alert.avsc.
"""

from __future__ import annotations

import itertools
import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.aggregate.merge import FinalWindow
from streams.aggregate.stats import Exemplar, window_stats
from streams.alert.evaluate import (
    AlertEvaluator,
    AlertState,
    OperationWindow,
    fingerprint,
    operation_windows,
)
from streams.alert.rules import RuleSet, load_rules
from streams.model.codec import AvroCodec

GOLDEN = Path(__file__).resolve().parents[2] / "testdata" / "alert" / "scenarios"
CASES = sorted(GOLDEN.glob("*.json"))
BASE_NS = 1_700_000_000_000_000_000
S = 1_000_000_000
MS = 1_000_000
EXEMPLARS = 3
CODEC = AvroCodec("alert")


def scenario_rules(raw: str | dict[str, Any], name: str) -> RuleSet:
    """The scenario's rules, through the same loader as a rules file."""
    text = raw if isinstance(raw, str) else yaml.safe_dump(raw, sort_keys=False)
    return load_rules(text, name)


def finals_of(
    step: dict[str, Any], start_s: int, window_s: int, repeat_index: int
) -> list[FinalWindow]:
    """The final windows (one per status class) of one scenario window."""
    if "durations_ms" in step:
        durations = [round(d * MS) for d in step["durations_ms"]]
    else:
        latency = step["latency_ms"]
        if isinstance(latency, list):
            latency = latency[repeat_index % len(latency)]
        durations = [round(latency * MS)] * step["count"]
    errors = step.get("errors", 0)
    start = BASE_NS + start_s * S
    finals = []
    for status, part, offset in (
        ("error", durations[:errors], 0),
        ("ok", durations[errors:], errors),
    ):
        if not part:
            continue
        calls = [
            Exemplar(d, f"{step['service']}-{start_s}-{offset + i}", f"{offset + i:016x}")
            for i, d in enumerate(part)
        ]
        exemplars = sorted(calls, reverse=True)[:EXEMPLARS]
        stats = window_stats(part, len(part) if status == "error" else 0, exemplars, 0.01)
        key = (step["service"], step["operation"], "SERVER", status)
        finals.append(FinalWindow(start, start + window_s * S, key, stats, 1))
    return finals


def windows_of(step: dict[str, Any], window_s: int) -> Iterator[list[FinalWindow]]:
    """Each window a step stands for (`repeat` consecutive ones)."""
    for i in range(step.get("repeat", 1)):
        yield finals_of(step, step["start_s"] + i * window_s, window_s, i)


def project(event: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    """The fields of an event an expected entry names, in its units."""
    seconds = {
        "window_start_s": "window_start_unix_nano",
        "starts_at_s": "starts_at_unix_nano",
        "ends_at_s": "ends_at_unix_nano",
    }
    out: dict[str, Any] = {}
    for key in expected:
        if key in seconds:
            value = event[seconds[key]]
            out[key] = (value - BASE_NS) // S if value else 0
        elif key.endswith("_ms"):
            out[key] = event[key.removesuffix("_ms")] / MS
        elif key == "exemplars":
            out[key] = len(event["exemplar_trace_ids"])
        else:
            out[key] = event[key]
    return out


def approximate(expected: dict[str, Any]) -> dict[str, Any]:
    """Expected values with sketch-derived numbers compared within 2%."""
    return {
        key: pytest.approx(value, rel=0.02)
        if key in ("value", "threshold", "baseline") or key.endswith("_ms")
        else value
        for key, value in expected.items()
    }


def run(scenario: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """Every event the scenario's steps produce, checking each event's invariants."""
    rules = scenario_rules(scenario["rules"], name)
    window_s = scenario.get("window_s", 10)
    clock = [BASE_NS]
    table: dict[str, bytes] = {}
    evaluator = AlertEvaluator(rules, lambda: clock[0])
    events: list[dict[str, Any]] = []
    for step in scenario["steps"]:
        if step.get("restart"):
            evaluator = AlertEvaluator(rules, lambda: clock[0])
            evaluator.restore({k: pickle.loads(v) for k, v in table.items()})
            continue
        for finals in windows_of(step, window_s):
            for window in operation_windows(finals, EXEMPLARS):
                clock[0] = window.window_end_unix_nano + S
                for event in evaluator.evaluate(window):
                    assert event["emitted_at_unix_nano"] == clock[0]
                    assert event["fingerprint"] == fingerprint(
                        event["rule"], event["service"], event["operation"]
                    )
                    assert CODEC.decode(CODEC.encode(event)) == event
                    events.append(event)
            for key, state in evaluator.take_changed().items():
                table[key] = pickle.dumps(state, pickle.HIGHEST_PROTOCOL)
    return events


def test_there_are_golden_scenarios() -> None:
    assert len(CASES) >= 10


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_golden_scenario(case: Path) -> None:
    scenario = json.loads(case.read_text())
    events = run(scenario, case.name)
    expected = scenario["expected"]
    got = [project(e, x) for e, x in zip(events, expected, strict=False)]
    summary = [(e["state"], e["rule"], e["service"], e["operation"]) for e in events]
    assert len(events) == len(expected), summary
    assert got == [approximate(x) for x in expected], summary
    # Sequence numbers count each alert's transitions, without gaps or repeats.
    per_alert: dict[str, list[int]] = {}
    for event in events:
        per_alert.setdefault(event["fingerprint"], []).append(event["sequence"])
    for sequences in per_alert.values():
        assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))


# Units around the scenarios.


def op_window(
    durations_ms: list[float], start_s: int = 0, errors: int = 0, window_s: int = 10
) -> OperationWindow:
    step = {"service": "api", "operation": "GET /", "durations_ms": durations_ms, "errors": errors}
    (window,) = operation_windows(finals_of(step, start_s, window_s, 0), EXEMPLARS)
    return window


def test_operation_windows_merge_kinds_and_classes_without_touching_inputs() -> None:
    step = {"service": "api", "operation": "GET /", "durations_ms": [5, 1, 9, 3], "errors": 1}
    finals = finals_of(step, 0, 10, 0)
    other_kind = finals_of({**step, "durations_ms": [7, 2], "errors": 0}, 0, 10, 0)
    other_kind = [
        FinalWindow(
            f.window_start_unix_nano,
            f.window_end_unix_nano,
            ("api", "GET /", "CLIENT", "ok"),
            f.stats,
            1,
        )
        for f in other_kind
    ]
    later = finals_of({**step, "start_s": 10}, 10, 10, 0)
    other_op = finals_of({**step, "operation": "GET /a"}, 0, 10, 0)
    before = [(f.stats.count, f.stats.sketch.count, list(f.stats.exemplars)) for f in finals]
    windows = operation_windows(later + other_op + other_kind + finals, EXEMPLARS)
    assert [(w.window_start_unix_nano - BASE_NS, w.operation) for w in windows] == [
        (0, "GET /"),
        (0, "GET /a"),
        (10 * S, "GET /"),
    ]
    merged = windows[0]
    assert (merged.count, merged.errors, merged.sketch.count) == (6, 1, 6)
    assert merged.signal("p50") == pytest.approx(4 * MS, rel=0.02)
    assert merged.signal("error_rate") == pytest.approx(1 / 6)
    assert merged.signal("throughput") == pytest.approx(0.6)
    # The slowest traces first, each once (the CLIENT calls share trace ids with the SERVER ones).
    assert merged.exemplar_trace_ids == ["api-0-2", "api-0-0", "api-0-3"]
    assert [
        (f.stats.count, f.stats.sketch.count, list(f.stats.exemplars)) for f in finals
    ] == before


def test_signal_names_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown signal 'p98'"):
        op_window([1.0]).signal("p98")


def test_fingerprint_is_stable_and_short() -> None:
    print_ = fingerprint("checkout-slow", "checkout", "POST /pay")
    assert print_ == fingerprint("checkout-slow", "checkout", "POST /pay")
    assert len(print_) == 16 and int(print_, 16) >= 0
    # Fixed across processes and releases: a changed fingerprint would re-fire open alerts.
    assert print_ == "5602e86fdf9539df"
    # The separator keeps the parts apart.
    assert fingerprint("a", "b c", "d") != fingerprint("a", "b", "c d")


def test_breaching_windows_never_enter_the_baseline() -> None:
    rules = load_rules(
        "rules:\n  - {name: anomaly, type: anomaly, signal: p99, floor: 1ms, for: 2,"
        " baseline_windows: 5, min_baseline_windows: 3}\n",
        "inline",
    )
    evaluator = AlertEvaluator(rules, lambda: 0)
    for i in range(5):
        evaluator.evaluate(op_window([20.0] * 20, start_s=10 * i))
    states = []
    for i in range(5, 60):  # a long incident: 5x for 55 windows
        states += [e["state"] for e in evaluator.evaluate(op_window([100.0] * 20, start_s=10 * i))]
    assert states == ["pending", "firing"]
    state = evaluator.state(fingerprint("anomaly", "api", "GET /"))
    assert state is not None and state.state == "firing"
    assert state.baseline == [pytest.approx(20 * MS, rel=0.02)] * 5


def test_rules_are_asked_for_each_window_so_a_reload_takes_effect() -> None:
    slow = load_rules("rules:\n  - {name: slow, signal: p99, threshold: 50ms}\n", "a")
    slower = load_rules("rules:\n  - {name: slow, signal: p99, threshold: 500ms}\n", "b")
    current = [slow]
    evaluator = AlertEvaluator(lambda: current[0], lambda: 0)
    assert [e["state"] for e in evaluator.evaluate(op_window([100.0] * 20))] == ["firing"]
    current[0] = slower
    events = evaluator.evaluate(op_window([100.0] * 20, start_s=10))
    events += evaluator.evaluate(op_window([100.0] * 20, start_s=20))
    assert [(e["state"], e["threshold"]) for e in events] == [("resolved", 500 * MS)]


def test_taken_states_are_only_the_changed_ones_and_pickle() -> None:
    rules = load_rules("rules:\n  - {name: slow, signal: p99, threshold: 50ms}\n", "a")
    evaluator = AlertEvaluator(rules, lambda: 0)
    evaluator.evaluate(op_window([100.0] * 20))
    (changed,) = evaluator.take_changed().values()
    assert evaluator.take_changed() == {}
    assert pickle.loads(pickle.dumps(changed)) == changed
    assert isinstance(changed, AlertState) and changed.state == "firing"
    evaluator.evaluate(op_window([100.0] * 5, start_s=10))  # below min_count: not evaluated
    assert evaluator.take_changed() == {}


def test_every_scenario_window_count_is_plausible() -> None:
    # Guards the harness itself: repeats expand to consecutive windows.
    step = {"service": "s", "operation": "o", "start_s": 20, "latency_ms": [1, 2], "count": 3}
    starts = [f[0].window_start_unix_nano - BASE_NS for f in windows_of({**step, "repeat": 3}, 10)]
    assert starts == [20 * S, 30 * S, 40 * S]
    durations = list(
        itertools.chain.from_iterable(
            [f[0].stats.max_ns] for f in windows_of({**step, "repeat": 3}, 10)
        )
    )
    assert durations == [1 * MS, 2 * MS, 1 * MS]
