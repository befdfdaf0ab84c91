"""Alert events become Alertmanager webhook (version 4) notifications; only firing and resolved
ones are forwarded; a failing receiver gets the same body again after backoff until it answers
2xx (delivered once) or the attempts run out."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from streams.alert.events import CANCELLED, FIRING, PENDING, RESOLVED
from streams.alert.webhook import (
    ZERO_TIME,
    WebhookForwarder,
    alertmanager_payload,
    forwarded,
    redact_url,
    webhook_urls,
)
from streams.broker.probe import free_port
from streams.config import AlertConfig
from streams.query.table import rfc3339
from tests.unit.alert.test_events import MS, T0, S, alert_event, resolved_event

EXTERNAL_URL = "http://127.0.0.1:6066"
ALERTMANAGER_KEYS = {
    "version",
    "groupKey",
    "truncatedAlerts",
    "status",
    "receiver",
    "groupLabels",
    "commonLabels",
    "commonAnnotations",
    "externalURL",
    "alerts",
}
ALERT_KEYS = {
    "status",
    "labels",
    "annotations",
    "startsAt",
    "endsAt",
    "generatorURL",
    "fingerprint",
}


class Receiver:
    """A webhook receiver on 127.0.0.1 in a thread: answers the first `fail_first` POSTs with
    `fail_status` (after `delay_s`), every later one with 200; records (status, body) of each."""

    def __init__(self, fail_first: int = 0, fail_status: int = 500, delay_s: float = 0.0) -> None:
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.delay_s = delay_s
        self.posts: list[tuple[int, bytes]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    failing = len(receiver.posts) < receiver.fail_first
                    status = receiver.fail_status if failing else 200
                    receiver.posts.append((status, body))
                if failing and receiver.delay_s:
                    time.sleep(receiver.delay_s)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def delivered(self) -> list[dict[str, Any]]:
        """The JSON bodies answered with 2xx."""
        with self._lock:
            return [json.loads(body) for status, body in self.posts if 200 <= status < 300]


@contextmanager
def receiver(**kwargs: Any) -> Iterator[Receiver]:
    with Receiver(**kwargs) as running:
        yield running


def forwarder(sleeps: list[float], **config: Any) -> WebhookForwarder:
    async def record_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return WebhookForwarder(AlertConfig(**config), EXTERNAL_URL, sleep=record_sleep)


# The notification body.


def test_a_firing_event_is_an_alertmanager_v4_notification() -> None:
    payload = alertmanager_payload([alert_event()], EXTERNAL_URL)
    assert set(payload) == ALERTMANAGER_KEYS
    assert payload["version"] == "4"
    assert payload["receiver"] == "tracepipe"
    assert payload["status"] == "firing"
    assert payload["truncatedAlerts"] == 0
    assert payload["externalURL"] == EXTERNAL_URL
    assert payload["groupLabels"] == {"alertname": "latency-anomaly"}
    assert payload["groupKey"] == '{}:{alertname="latency-anomaly"}'
    [alert] = payload["alerts"]
    assert set(alert) == ALERT_KEYS
    labels = {
        "alertname": "latency-anomaly",
        "service": "payment",
        "operation": "charge",
        "severity": "critical",
        "team": "shop",
    }
    assert alert["labels"] == labels
    assert payload["commonLabels"] == labels
    assert alert["status"] == "firing"
    assert alert["startsAt"] == rfc3339(T0 - 10 * S)
    assert alert["endsAt"] == ZERO_TIME == "0001-01-01T00:00:00Z"
    assert alert["fingerprint"] == "5f1c0ffee0ddba11"
    assert alert["generatorURL"] == EXTERNAL_URL
    annotations = alert["annotations"]
    assert annotations["summary"] == (
        "latency-anomaly firing for payment: charge: p99 612 ms > 150 ms (baseline 48.2 ms)"
    )
    assert annotations["description"].splitlines() == [
        f"payment: charge p99 612 ms > 150 ms (baseline 48.2 ms) in the window "
        f"{rfc3339(T0)} to {rfc3339(T0 + 10 * S)}.",
        f"Slowest traces: {0xA:032x}, {0xB:032x}.",
        "Largest critical-path increase: payment: charge +120 ms (80% of the increase).",
    ]
    assert annotations["exemplar_trace_ids"] == f"{0xA:032x},{0xB:032x}"
    assert annotations["attribution"] == "payment: charge +120 ms (80% of the increase)"
    assert payload["commonAnnotations"] == annotations
    json.dumps(payload)  # plain JSON types only


def test_a_resolved_event_has_its_end() -> None:
    payload = alertmanager_payload([resolved_event()], EXTERNAL_URL)
    [alert] = payload["alerts"]
    assert payload["status"] == alert["status"] == "resolved"
    assert alert["endsAt"] == rfc3339(T0 + 30 * S)
    assert alert["startsAt"] == rfc3339(T0 - 10 * S)
    assert "90.1 ms, not > 150 ms" in alert["annotations"]["summary"]


def test_core_labels_win_over_rule_labels_and_common_labels_are_shared() -> None:
    sneaky = alert_event(labels={"team": "shop", "service": "other", "severity": "info"})
    assert alertmanager_payload([sneaky], "")["alerts"][0]["labels"]["service"] == "payment"
    cart = alert_event(service="cart", fingerprint="c0ffee", state=RESOLVED, ends_at_unix_nano=T0)
    payload = alertmanager_payload([alert_event(), cart], EXTERNAL_URL)
    assert payload["status"] == "firing"  # any firing alert makes the group firing
    assert payload["commonLabels"] == {
        "alertname": "latency-anomaly",
        "operation": "charge",
        "severity": "critical",
        "team": "shop",
    }
    other_rule = alert_event(rule="error-rate", fingerprint="e770")
    assert alertmanager_payload([alert_event(), other_rule], "")["groupLabels"] == {}


def test_only_firing_and_resolved_events_are_forwarded() -> None:
    assert [forwarded(alert_event(state=s)) for s in (PENDING, FIRING, RESOLVED, CANCELLED)] == [
        False,
        True,
        True,
        False,
    ]
    with pytest.raises(ValueError, match="no firing or resolved event"):
        alertmanager_payload([alert_event(state=PENDING), alert_event(state=CANCELLED)], "")
    mixed = alertmanager_payload([alert_event(state=PENDING), resolved_event()], "")
    assert [a["status"] for a in mixed["alerts"]] == ["resolved"]


@pytest.mark.parametrize(
    ("time_ns", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (1_700_000_000 * S, "2023-11-14T22:13:20Z"),
        (1_700_000_000 * S + 250 * MS, "2023-11-14T22:13:20.25Z"),
        (1_700_000_000 * S + 1, "2023-11-14T22:13:20.000000001Z"),
    ],
)
def test_times_are_rfc3339_utc(time_ns: int, text: str) -> None:
    assert rfc3339(time_ns) == text


def test_urls_come_from_the_config_and_passwords_stay_out_of_messages() -> None:
    config = AlertConfig(webhook_urls=" http://a:9/x , ,https://b/y")
    assert webhook_urls(config) == ["http://a:9/x", "https://b/y"]
    assert webhook_urls(AlertConfig()) == []
    assert (
        redact_url("https://bot:s3cret@hooks.example/x?y=1")
        == "https://bot:***@hooks.example/x?y=1"
    )
    assert redact_url("http://127.0.0.1:9/hook") == "http://127.0.0.1:9/hook"


# Delivery with retries.


def test_a_receiver_failing_twice_gets_the_alert_exactly_once_after_retries() -> None:
    sleeps: list[float] = []
    hook = forwarder(sleeps, webhook_initial_backoff_ms=500, webhook_max_backoff_ms=30_000)
    with receiver(fail_first=2) as server:
        assert asyncio.run(hook.deliver(alert_event(), server.url)) is True
    statuses = [status for status, _body in server.posts]
    assert statuses == [500, 500, 200]
    assert len({body for _status, body in server.posts}) == 1  # the same bytes every time
    assert server.delivered() == [alertmanager_payload([alert_event()], EXTERNAL_URL)]
    assert sleeps == [0.5, 1.0]


def test_a_receiver_that_always_fails_is_given_up_after_max_attempts() -> None:
    sleeps: list[float] = []
    hook = forwarder(
        sleeps, webhook_max_attempts=5, webhook_initial_backoff_ms=100, webhook_max_backoff_ms=300
    )
    with receiver(fail_first=10**6, fail_status=503) as server:
        result = asyncio.run(hook.send(resolved_event(), server.url))
        assert asyncio.run(hook.deliver(resolved_event(), server.url)) is False
    assert (result.delivered, result.attempts) == (False, 5)
    assert result.last_error == "HTTP 503 Service Unavailable"
    assert len(server.posts) == 10 and not server.delivered()
    assert sleeps == [0.1, 0.2, 0.3, 0.3] * 2  # doubling, capped at webhook_max_backoff_ms


def test_connection_errors_and_timeouts_are_retried() -> None:
    sleeps: list[float] = []
    hook = forwarder(sleeps, webhook_max_attempts=2, webhook_initial_backoff_ms=10)
    refused = asyncio.run(hook.send(alert_event(), f"http://127.0.0.1:{free_port()}/hook"))
    assert (refused.delivered, refused.attempts) == (False, 2)
    assert refused.last_error.startswith("ClientConnectorError")

    slow_first = forwarder(sleeps, webhook_timeout_s=0.2, webhook_initial_backoff_ms=10)
    with receiver(fail_first=1, delay_s=1.0) as server:
        result = asyncio.run(slow_first.send(alert_event(), server.url))
    assert (result.delivered, result.attempts) == (True, 2)
    assert len(server.delivered()) == 1


def test_backoff_doubles_up_to_the_maximum() -> None:
    hook = forwarder([], webhook_initial_backoff_ms=500, webhook_max_backoff_ms=3_000)
    assert [hook.backoff_s(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


def test_an_error_rate_alert_says_where_its_errors_originated() -> None:
    from streams.alert.webhook import alert_annotations
    from tests.unit.alert.test_events import alert_event, error_rate_event

    annotations = alert_annotations(error_rate_event())
    origin = "82% of checkout's error traces originate in inventory/Reserve"
    assert annotations["error_origin"] == origin
    assert f"Error origin: {origin}." in annotations["description"].splitlines()
    assert alert_annotations(alert_event())["error_origin"] == ""
