"""Alert events become tracepipe_alerts rows that chDB stores and reads back as the same events;
an event stored twice is one row; `tracepipe alerts list` prints the stored transitions."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from streams.alert.events import PENDING, AlertEvent
from streams.broker.probe import free_port
from streams.cli import main
from streams.sink.alerts import ALERTS, ALERTS_COLUMNS, alert_record, alert_row
from streams.warehouse import Warehouse
from tests.unit.alert.test_events import MS, T0, S, alert_event, resolved_event


def store(warehouse: Warehouse, *events: AlertEvent) -> None:
    warehouse.insert(ALERTS, ALERTS_COLUMNS, [alert_row(e.to_record()) for e in events])


def stored(warehouse: Warehouse, final: bool = True) -> list[AlertEvent]:
    rows = warehouse.query_dicts(
        f"SELECT * FROM {ALERTS} {'FINAL' if final else ''} ORDER BY EmittedAt, Sequence"
    )
    return [AlertEvent.from_record(alert_record(r)) for r in rows]


def test_alert_row_maps_every_field() -> None:
    row = dict(zip(ALERTS_COLUMNS, alert_row(alert_event().to_record()), strict=True))
    assert (row["Fingerprint"], row["Sequence"], row["State"]) == ("5f1c0ffee0ddba11", 2, "firing")
    assert (row["ServiceName"], row["SpanName"], row["Signal"]) == ("payment", "charge", "p99")
    assert (row["Value"], row["Threshold"], row["Baseline"]) == (612 * MS, 150 * MS, 48.2 * MS)
    assert row["Labels"] == {"team": "shop"}
    assert row["AttributionServices"] == ["payment", "checkout"]
    assert row["AttributionIncreaseNs"] == [120 * MS, 30 * MS]
    assert row["AttributionShare"] == [0.8, 0.2]
    assert (row["WindowStart"], row["EndsAt"], row["EmittedAt"]) == (T0, 0, T0 + 41 * S)


def test_emitted_at_falls_back_to_the_window_end() -> None:
    record = alert_event(emitted_at_unix_nano=0).to_record()
    assert alert_row(record)[ALERTS_COLUMNS.index("EmittedAt")] == T0 + 10 * S


def test_events_are_stored_and_read_back_unchanged(alert_table: Warehouse) -> None:
    events = [alert_event(), resolved_event()]
    store(alert_table, *events)
    assert stored(alert_table) == events


def test_a_redelivered_event_is_one_row(alert_table: Warehouse) -> None:
    store(alert_table, alert_event(), resolved_event())
    store(alert_table, alert_event())  # the same transition again (a redelivered message)
    assert len(stored(alert_table, final=False)) == 3
    assert stored(alert_table) == [alert_event(), resolved_event()]


# tracepipe alerts list


@pytest.fixture
def cli_env(chdb_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACEPIPE_CLICKHOUSE_URL", chdb_url)
    monkeypatch.setenv("TRACEPIPE_WORKER_WEB_PORT", str(free_port()))  # no worker answers


@pytest.mark.usefixtures("cli_env")
def test_cli_alerts_list_prints_the_transitions(
    alert_table: Warehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    pending = alert_event(state=PENDING, sequence=1, emitted_at_unix_nano=T0 + 31 * S)
    store(alert_table, pending, alert_event(), resolved_event())
    store(alert_table, alert_event(service="cart", fingerprint="0ca7", sequence=1))
    assert main(["alerts", "list", "--since", "2h", "--service", "payment"]) == 0
    title, header, _rule, *rows = capsys.readouterr().out.splitlines()
    assert title.startswith("3 alert transitions of service 'payment' between ")
    assert header.split() == [
        "time", "state", "severity", "rule", "service/operation", "value", "slowest", "trace",
        "top", "attribution", "error", "origin",
    ]  # fmt: skip
    assert [r.split()[2:6] for r in rows] == [
        ["PENDING", "critical", "latency-anomaly", "payment/charge"],
        ["FIRING", "critical", "latency-anomaly", "payment/charge"],
        ["RESOLVED", "critical", "latency-anomaly", "payment/charge"],
    ]
    assert "p99 612 ms > 150 ms (baseline 48.2 ms)" in rows[1]
    assert f"{0xA:032x}" in rows[1]
    assert rows[1].rstrip().endswith("payment: charge +120 ms (80% of the increase)")

    assert main(["alerts", "list", "--since", "2h", "--state", "resolved"]) == 0
    title, _header, _rule, *rows = capsys.readouterr().out.splitlines()
    assert title.startswith("1 resolved alert transitions between ")
    assert len(rows) == 1 and "p99 90.1 ms, not > 150 ms" in rows[0]


@pytest.mark.usefixtures("cli_env")
def test_cli_alerts_list_says_when_there_is_none(
    alert_table: Warehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    store(alert_table, alert_event())  # an hour ago: outside the last 10 minutes
    assert main(["alerts", "list", "--since", "10m"]) == 1
    assert capsys.readouterr().out.startswith("no alert transitions between ")
    assert main(["alerts", "list", "--since", "1h", "--until", "2h"]) == 2
    assert "is not before --until" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["alerts"], ["alerts", "tail"], ["alerts", "list"]])
def test_cli_alerts_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    assert "usage: tracepipe alerts" in capsys.readouterr().out


def test_cli_alerts_tail_prints_one_line_per_event_and_ctrl_c_exits_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, object] = {}

    def fake_subscribe(bootstrap: str, topic: str, **options: object) -> Iterator[AlertEvent]:
        seen.update(options, topic=topic)
        yield alert_event()
        yield resolved_event(attribution=())
        raise KeyboardInterrupt

    monkeypatch.setattr("streams.alert.subscribe.subscribe", fake_subscribe)
    monkeypatch.setenv("TRACEPIPE_KAFKA_TOPIC_PREFIX", "shop.")
    assert main(["alerts", "tail", "--state", "firing", "--service", "payment"]) == 0
    assert seen == {
        "topic": "shop.alerts",
        "state": "firing",
        "service": "payment",
        "from_beginning": False,
    }
    captured = capsys.readouterr()
    assert "following shop.alerts" in captured.err
    firing, resolved = captured.out.splitlines()
    assert re.split(r" {2,}", firing)[1:] == [
        "FIRING",
        "critical",
        "latency-anomaly",
        "payment/charge",
        "p99 612 ms > 150 ms (baseline 48.2 ms)",
        f"trace {0xA:032x}",
        "payment: charge +120 ms (80% of the increase)",
    ]
    assert resolved.endswith(f"p99 90.1 ms, not > 150 ms (baseline 48.2 ms)  trace {0xA:032x}")


def test_an_error_rate_event_is_stored_with_its_origins(alert_table: Warehouse) -> None:
    from tests.unit.alert.test_events import error_rate_event

    event = error_rate_event()
    row = dict(zip(ALERTS_COLUMNS, alert_row(event.to_record()), strict=True))
    assert row["ErrorOriginServices"] == ["inventory", "payment"]
    assert row["ErrorOriginPropagatedTo"] == [["checkout", "frontend"], ["checkout"]]
    store(alert_table, event)
    assert stored(alert_table) == [event]
