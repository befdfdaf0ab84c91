"""What the CLI answers when there is nothing to show or the input is wrong: one line that says
why, and one exit status rule (0 found, 1 nothing found or unusable input, 2 cannot run); and
how it prints times and durations. On a real chDB warehouse; the worker's HTTP API is faked."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from streams.broker.probe import free_port
from streams.cli import main
from streams.config import load_settings
from streams.model.span import make_span
from streams.query.windows import arrival_lag
from streams.sink.alerts import ALERTS
from streams.sink.spans import OTEL_TRACES, OTEL_TRACES_COLUMNS, span_row
from streams.warehouse import Warehouse

ROOT = Path(__file__).parents[3]
S = 1_000_000_000
MS = 1_000_000
T0 = (time.time_ns() - 600 * S) // S * S  # ten minutes ago: inside the TTL and `--since 1h`
JAEGER_ID = "0123456789abcdef"
"""A 64-bit trace id, as Jaeger and Zipkin show it."""
TRACE_ID = "0" * 16 + JAEGER_ID


def iso(time_unix_nano: int) -> str:
    """ISO 8601 in UTC, as the tests expect it: whole ms here, so three decimals or none."""
    seconds, nanos = divmod(time_unix_nano, S)
    fraction = f".{nanos // MS:03d}" if nanos else ""
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S}{fraction}Z"


@pytest.fixture(scope="module")
def spans(migrated_warehouse: Warehouse) -> Warehouse:
    """A two-span trace of service checkout (a 64-bit id, as Zipkin reporters send them)."""
    root = make_span(TRACE_ID, "a" * 16, "GET /checkout", "checkout", T0, T0 + 250 * MS)
    child = make_span(
        TRACE_ID, "b" * 16, "charge", "checkout", T0 + MS, T0 + 41 * MS, parent_span_id="a" * 16
    )
    migrated_warehouse.insert(OTEL_TRACES, OTEL_TRACES_COLUMNS, [span_row(root), span_row(child)])
    return migrated_warehouse


@pytest.fixture
def cli_env(chdb_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACEPIPE_CLICKHOUSE_URL", chdb_url)
    monkeypatch.setenv("TRACEPIPE_WORKER_WEB_PORT", str(free_port()))  # no worker answers


# The exit status rule, documented once.


def test_the_exit_status_rule_is_in_help_and_readme(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "exit status, the same for every command: 0 found" in out
    assert "1 nothing found" in out and "2 the command could not run" in out
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "Exit status, the same for every command" in readme


# produce: files that cannot be read, empty input (neither needs the broker).


@pytest.mark.parametrize("what", ["missing", "directory"])
def test_produce_of_an_unreadable_file_is_one_line(
    what: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nothing.json" if what == "missing" else tmp_path
    assert main(["produce", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    reason = "No such file or directory" if what == "missing" else "Is a directory"
    assert err == f"tracepipe: error: cannot read spans from {path}: {reason}\n"


@pytest.mark.parametrize("content", [b"", b"\n  \n"])
def test_produce_of_an_empty_file_says_no_spans(
    content: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "spans.json"
    path.write_bytes(content)
    assert main(["produce", str(path)]) == 1
    assert capsys.readouterr().err == f"tracepipe: error: no spans to send: {path} is empty\n"


# trace: ids


@pytest.mark.usefixtures("cli_env")
@pytest.mark.parametrize("text", ["abc", "xyz0123456789abcdef0123456789abcd", "0" * 32, "1" * 20])
def test_trace_of_a_malformed_id_says_it_is_not_one(
    text: str, spans: Warehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["trace", text]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"tracepipe: error: {text!r} is not a trace id: give 32 hex digits")


@pytest.mark.usefixtures("cli_env")
def test_trace_takes_a_64_bit_id(spans: Warehouse, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", JAEGER_ID.upper()]) == 0
    out = capsys.readouterr().out
    assert "GET /checkout" in out and "charge" in out
    assert main(["query", "spans", "--trace-id", JAEGER_ID]) == 0
    assert capsys.readouterr().out.count(TRACE_ID) == 2


# Unknown services


@pytest.mark.usefixtures("cli_env")
@pytest.mark.parametrize(
    "argv",
    [
        ["query", "latency", "--service", "chekout"],
        ["query", "spans", "--service", "chekout"],
        ["alerts", "list", "--service", "chekout"],
    ],
)
def test_an_unknown_service_is_named_with_the_known_ones(
    argv: list[str], spans: Warehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    spans.execute(f"TRUNCATE TABLE {ALERTS}")
    assert main(argv) == 1
    assert capsys.readouterr().out == "unknown service 'chekout'; known services: checkout\n"


# Times as ISO 8601, durations in ms


@pytest.mark.usefixtures("cli_env")
def test_query_spans_prints_iso_times_and_ms(
    spans: Warehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["query", "spans", "--service", "checkout"]) == 0
    header, _rule, *rows = capsys.readouterr().out.splitlines()
    assert header.split()[:2] == ["Timestamp", "TraceId"]
    assert "Duration ms" in header
    assert [row.split()[0] for row in rows] == [iso(T0 + MS), iso(T0)]
    assert [row.split()[6] for row in rows] == ["40.0", "250"]


@pytest.mark.usefixtures("cli_env")
def test_query_sql_prints_iso_times_and_ms(
    spans: Warehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    sql = (
        f"SELECT Timestamp, Duration, toDateTime(Timestamp) AS second FROM {OTEL_TRACES} "
        "WHERE SpanName = 'charge'"
    )
    assert main(["query", "sql", sql]) == 0
    header, _rule, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["Timestamp", "Duration", "ms", "second"]
    assert row.split() == [iso(T0 + MS), "40.0", iso(T0)]


# Nothing found: exit 1 everywhere


@pytest.mark.usefixtures("cli_env")
def test_nothing_found_exits_1(spans: Warehouse, capsys: pytest.CaptureFixture[str]) -> None:
    spans.execute(f"TRUNCATE TABLE {ALERTS}")
    assert main(["query", "sql", f"SELECT * FROM {OTEL_TRACES} WHERE 0"]) == 1
    assert main(["query", "count", "--trace-id", "1" * 32]) == 1
    assert main(["query", "count", "--trace-id", JAEGER_ID]) == 0
    assert main(["alerts", "list", "--since", "1h", "--service", "checkout"]) == 1
    assert main(["trace", "1" * 32]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == [
        "0",
        "2",
        f"no alert transitions of service 'checkout' between {out[-2].split('between ')[1]}",
        f"trace {'1' * 32}: no spans stored (sampled out, expired, or not yet written)",
    ]


# The hint quotes the window settings in force: the running worker's


class _FakeWorker(BaseHTTPRequestHandler):
    """A worker's HTTP API over a real warehouse: /api/stats with its settings, /api/query."""

    warehouse: Warehouse
    settings: dict[str, int]

    def do_GET(self) -> None:
        self._answer({"counters": {}, "settings": self.settings})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self._answer({"rows": self.warehouse.query_dicts(body["sql"])})

    def _answer(self, doc: dict[str, Any]) -> None:
        payload = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def demo_worker(spans: Warehouse, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A "worker" with the demo's window settings (5 s + 5 s, trace idle 3 s); its URL."""
    handler = type(
        "DemoWorker",
        (_FakeWorker,),
        {
            "warehouse": spans,
            "settings": {
                "aggregation.window_ms": 5000,
                "aggregation.allowed_lateness_ms": 5000,
                "assembly.trace_idle_ms": 3000,
            },
        },
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("TRACEPIPE_WORKER_WEB_PORT", str(server.server_address[1]))
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()


def test_the_window_hint_quotes_the_running_worker_s_settings(
    demo_worker: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["query", "latency", "--service", "checkout", "--since", "10m"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("no latency windows for service 'checkout' between ")
    assert out.rstrip().endswith(
        "windows appear after window + allowed lateness (5 s + 5 s), from the settings of the "
        f"worker at {demo_worker}"
    )
    assert main(["query", "deps", "--since", "10m"]) == 1
    assert "edges appear after trace idle (3 s) + window + allowed lateness (5 s + 5 s)" in (
        capsys.readouterr().out
    )


@pytest.mark.usefixtures("cli_env")
def test_without_a_worker_the_hint_says_whose_settings(
    spans: Warehouse, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACEPIPE_AGGREGATION_WINDOW_MS", "2000")
    assert main(["query", "latency", "--service", "checkout", "--since", "10m"]) == 1
    out = capsys.readouterr().out
    assert "window + allowed lateness (2 s + 30 s), from this command's settings; no worker " in out


def test_the_demo_view_quotes_its_worker_s_window_settings() -> None:
    from rich.console import Console

    from streams.demo import DEMO_WORKER_ENV
    from streams.demo.view import ViewSnapshot, render_view

    worker_settings = load_settings(env=DEMO_WORKER_ENV)
    snapshot = ViewSnapshot(
        elapsed_s=1.0, incidents="", windows_hint=arrival_lag(worker_settings, "latency")
    )
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(render_view(snapshot))
    assert (
        "(no final latency windows yet: windows appear after window + allowed lateness "
        "(5 s + 5 s))"
    ) in console.export_text()
