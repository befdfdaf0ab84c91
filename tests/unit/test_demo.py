"""The demo checks its promises, drains before it stops, and draws its view in place within the
screen's width, with no librdkafka lines over it."""

from __future__ import annotations

import io
import logging
import re
import time
from pathlib import Path

import pytest
from rich.console import Console

from streams.alert.events import FIRING, RESOLVED, AlertEvent, Attribution
from streams.config import load_settings
from streams.demo.promises import DemoOutcome, broken_promises, drain, pick_exemplar, report
from streams.demo.view import LiveView, ViewSnapshot, demo_logging, render_view
from streams.sdk import SpanProducer

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
UNREACHABLE = "127.0.0.1:1"  # nothing listens on port 1: connections are refused at once


def alert(
    service: str = "payment", state: str = FIRING, attributed: bool = True, trace: str = TRACE
) -> AlertEvent:
    return AlertEvent(
        fingerprint=f"fp-{service}",
        rule="p99-anomaly",
        rule_type="anomaly",
        state=state,
        service=service,
        operation="Charge",
        signal="p99",
        condition=">",
        value=900e6,
        threshold=300e6,
        window_start_unix_nano=1_700_000_000_000_000_000,
        window_end_unix_nano=1_700_000_005_000_000_000,
        starts_at_unix_nano=1_700_000_000_000_000_000,
        baseline=100e6,
        exemplar_trace_ids=(trace,),
        attribution=(Attribution("payment", "Charge", 20e6, 100e6, 80e6, 1.0),)
        if attributed
        else (),
    )


def outcome(**changes: object) -> DemoOutcome:
    kept: dict[str, object] = {
        "run_id": "r1",
        "incident_services": ("payment",),
        "spans_generated": 120_014,
        "spans_sent": 120_014,
        "spans_stored": 120_014,
        "traces_assembled": 11_803,
        "alerts": (alert(),),
        "exemplar_trace_id": TRACE,
        "exemplar_in_run": True,
    }
    return DemoOutcome(**{**kept, **changes})  # type: ignore[arg-type]


# --- promises ------------------------------------------------------------------------------------


def test_a_run_that_kept_its_promises_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert broken_promises(outcome()) == []
    assert report(outcome(), load_settings(env={})) == 0
    assert "every promise kept" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("changes", "broken"),
    [
        # The second run of the issue: late spans of old traces, nothing assembled.
        ({"traces_assembled": 0}, "no trace was assembled"),
        ({"alerts": (alert(attributed=False),)}, "fired without an attribution"),
        ({"alerts": (alert("frontend"),)}, "no alert fired for the incident on payment"),
        ({"alerts": (alert(state=RESOLVED),)}, "no alert fired for the incident on payment"),
        ({"exemplar_in_run": False}, f"the exemplar trace {TRACE} is not one of this run's"),
        ({"exemplar_trace_id": "", "exemplar_in_run": False}, "no alert named an exemplar"),
        ({"spans_stored": 0}, "no span of this run was stored"),
    ],
)
def test_a_broken_promise_exits_non_zero_and_says_which(
    changes: dict[str, object], broken: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = outcome(**changes)
    assert any(broken in line for line in broken_promises(run))
    assert report(run, load_settings(env={})) == 1
    failed = [line for line in capsys.readouterr().out.splitlines() if "demo: FAILED" in line]
    assert any(broken in line for line in failed)


def test_without_an_incident_no_alert_is_promised() -> None:
    run = outcome(incident_services=(), alerts=(), exemplar_trace_id="", exemplar_in_run=False)
    assert broken_promises(run) == []


def test_the_exemplar_comes_from_the_incidents_firing_alert() -> None:
    alerts = [alert("frontend", trace="a" * 32), alert(state=RESOLVED, trace="b" * 32), alert()]
    assert pick_exemplar(alerts, ["payment"]) == TRACE
    assert pick_exemplar(alerts, ["cart"]) == "a" * 32
    assert pick_exemplar([], ["payment"]) == ""


# --- drain ---------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def test_drain_waits_until_every_span_sent_is_stored() -> None:
    clock = Clock()
    counts = iter([100_000, 110_000, 119_103, 119_103, 120_014])
    seen: list[int] = []
    stored = drain(120_014, lambda: next(counts), 30.0, now=clock.now, sleep=clock.sleep,
                   on_wait=seen.append)  # fmt: skip
    assert stored == 120_014
    assert seen == [100_000, 110_000, 119_103, 119_103]


def test_drain_gives_up_only_after_a_stall_and_the_report_says_how_many_are_in_flight(
    capsys: pytest.CaptureFixture[str],
) -> None:
    clock = Clock()
    counts = iter([100_000] + [119_103] * 100)
    stored = drain(120_014, lambda: next(counts), 30.0, now=clock.now, sleep=clock.sleep)
    assert stored == 119_103
    assert clock.t == pytest.approx(31.0)  # 30 s after the last span stored, not before
    assert report(outcome(spans_stored=stored), load_settings(env={})) == 0
    out = capsys.readouterr().out
    assert "911 spans are still in flight" in out
    assert "`tracepipe worker`" in out


def test_drain_returns_at_once_when_everything_is_stored() -> None:
    clock = Clock()
    assert drain(5, lambda: 5, 30.0, now=clock.now, sleep=clock.sleep) == 5
    assert clock.t == 0


# --- the live view ------------------------------------------------------------------------------


def snapshot(elapsed_s: float = 12.0) -> ViewSnapshot:
    long_alert = alert().summary_line() + "  " + "x" * 200
    return ViewSnapshot(
        elapsed_s=elapsed_s,
        incidents="payment:latency*5@45s-85s",
        generator="   12.0 s  12,004 spans  1,180 traces  1,000 spans/s (target 1,000)  "
        "37 error spans",
        worker="11,500 spans consumed   1,020 traces assembled   40 latency windows   0 late",
        services=tuple(
            {"service": name, "calls/s": "1,234", "err%": "0.4", "p50 ms": "12.5", "p99 ms": "1.2"}
            for name in ("frontend", "checkout", "payment-gateway-with-a-long-name")
        ),
        web_url="http://127.0.0.1:6066/ui/",
        alerts=(long_alert, long_alert),
        phase="draining: 119,103 of 120,014 spans sent are stored",
    )


@pytest.mark.parametrize("width", [40, 60, 100])
def test_the_view_fits_the_width(width: int) -> None:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(render_view(snapshot()))
    lines = console.export_text().splitlines()
    assert len(lines) >= 10
    assert max(len(line) for line in lines) <= width
    header = next(i for i, line in enumerate(lines) if line.startswith("service "))
    names = [line.split()[0] for line in lines[header + 1 : header + 4]]
    assert names[:2] == ["frontend", "checkout"]
    # A narrow screen shortens the names, never the numbers.
    assert "payment-gateway-with-a-long-name".startswith(names[2].rstrip("…"))
    assert all(line.endswith("1.2") for line in lines[header + 1 : header + 4])


def test_on_a_terminal_the_view_is_redrawn_in_place() -> None:
    out = io.StringIO()
    console = Console(file=out, width=60, height=40, force_terminal=True, color_system=None)
    with LiveView(console) as view:
        view.show(snapshot(12.0))
        first = out.getvalue()
        view.show(snapshot(14.0))
    second = out.getvalue()[len(first) :]
    drawn = render_view(snapshot())
    height = len(Console(width=60, file=io.StringIO()).render_lines(drawn, pad=False))
    # The second frame first moves the cursor back up over the first and erases it.
    assert second.startswith("\r" + "\x1b[2K\x1b[1A" * (height - 1) + "\x1b[2K")
    # What lands between cursor moves and line ends: each piece fits the width.
    pieces = re.split(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n", out.getvalue())
    assert max(len(piece) for piece in pieces) <= 60


def test_off_a_terminal_a_status_line_every_ten_seconds_then_the_view_once() -> None:
    out = io.StringIO()
    clock = Clock()
    console = Console(file=out, width=80, color_system=None)
    with LiveView(console, now=clock.now) as view:
        for _ in range(30):  # a minute of frames, two seconds apart
            view.show(snapshot(clock.t))
            clock.sleep(2.0)
    lines = out.getvalue().splitlines()
    status = [line for line in lines if line.startswith("demo ")]
    assert len(status) == 6
    assert sum("tracepipe demo" in line for line in lines) == 1  # the view, once at the end


def test_librdkafka_lines_go_to_python_logging_not_onto_the_screen(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tracepipe.sdk")
    producer = SpanProducer(UNREACHABLE, "t.spans")
    deadline = time.monotonic() + 10
    while not any("Connection refused" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, "librdkafka logged no refused connection"
        producer.flush(0.2)
    producer.close(0.5)
    assert "rdkafka" not in capfd.readouterr().err


def test_during_the_demo_log_lines_and_warnings_go_to_its_log_file(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import warnings

    with demo_logging(tmp_path / "demo.log"):
        logging.getLogger("tracepipe.sdk").error("FAIL [rdkafka#producer-1] connect refused")
        warnings.warn("pkg_resources is deprecated as an API", UserWarning, stacklevel=1)
    logged = (tmp_path / "demo.log").read_text()
    assert "rdkafka#producer-1" in logged
    assert "pkg_resources" in logged
    err = capfd.readouterr().err
    assert "rdkafka" not in err
    assert "pkg_resources" not in err
