"""Alert events as Alertmanager webhook notifications, and the forwarder that POSTs them.

`alertmanager_payload` is pure: it builds the JSON body Alertmanager's `webhook_config` sends
(version "4"), so anything that accepts Alertmanager webhooks accepts tracepipe's. Only
`firing` and `resolved` events are forwarded; `pending` and `cancelled` stay on the topic.

`WebhookForwarder.deliver` POSTs one event to one URL with aiohttp, retrying failed attempts
(connection errors, timeouts, any non-2xx answer) up to `alert.webhook_max_attempts` POSTs,
with exponential backoff from `alert.webhook_initial_backoff_ms` to `webhook_max_backoff_ms`.
Every attempt sends the same bytes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from streams import __version__
from streams.alert.events import FIRING, RESOLVED, AlertEvent
from streams.config import AlertConfig
from streams.query.table import rfc3339

log = logging.getLogger("tracepipe.alert")

RECEIVER = "tracepipe"
"""The `receiver` of every notification (Alertmanager puts its receiver's name here)."""

ZERO_TIME = "0001-01-01T00:00:00Z"
"""`endsAt` of a firing alert, as Alertmanager sends it (Go's zero time)."""

FORWARDED_STATES = (FIRING, RESOLVED)


def forwarded(event: AlertEvent) -> bool:
    """Whether the webhook forwarder sends `event`: firing and resolved, not pending/cancelled."""
    return event.state in FORWARDED_STATES


def _group_key(group_labels: Mapping[str, str]) -> str:
    # Alertmanager's form for the root route grouped by these labels: {}:{name="value"}.
    inner = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(group_labels.items()))
    return "{}:{" + inner + "}"


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """The pairs every map has with the same value."""
    first, *rest = maps
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in rest)}


def alert_labels(event: AlertEvent) -> dict[str, str]:
    """An alert's labels: the rule's free labels, then alertname, service, operation, severity
    (these four win over a free label of the same name)."""
    return {
        **event.labels,
        "alertname": event.rule,
        "service": event.service,
        "operation": event.operation,
        "severity": event.severity,
    }


def alert_annotations(event: AlertEvent) -> dict[str, str]:
    """summary and description (value against threshold in human units, the window, the slowest
    traces, the largest critical-path increase, where most errors originated), plus the traces,
    attribution and error origin alone."""
    what = f"{event.service}: {event.operation}"
    comparison = event.comparison()
    lines = [
        f"{what} {comparison} in the window {rfc3339(event.window_start_unix_nano)} to "
        f"{rfc3339(event.window_end_unix_nano)}."
    ]
    if event.exemplar_trace_ids:
        lines.append(f"Slowest traces: {', '.join(event.exemplar_trace_ids)}.")
    top = event.top_attribution
    if top is not None:
        lines.append(f"Largest critical-path increase: {top.describe()}.")
    if event.top_error_origin:
        lines.append(f"Error origin: {event.top_error_origin}.")
    return {
        "summary": f"{event.rule} {event.state} for {what}: {comparison}",
        "description": "\n".join(lines),
        "exemplar_trace_ids": ",".join(event.exemplar_trace_ids),
        "attribution": top.describe() if top is not None else "",
        "error_origin": event.top_error_origin,
    }


def alertmanager_alert(event: AlertEvent, external_url: str) -> dict[str, Any]:
    """One entry of a notification's `alerts`."""
    resolved = event.state == RESOLVED
    ends_at = event.ends_at_unix_nano or event.window_end_unix_nano
    return {
        "status": RESOLVED if resolved else FIRING,
        "labels": alert_labels(event),
        "annotations": alert_annotations(event),
        "startsAt": rfc3339(event.starts_at_unix_nano),
        "endsAt": rfc3339(ends_at) if resolved else ZERO_TIME,
        "generatorURL": external_url,
        "fingerprint": event.fingerprint,
    }


def alertmanager_payload(events: Sequence[AlertEvent], external_url: str) -> dict[str, Any]:
    """The Alertmanager webhook (version 4) body for the forwarded ones of `events`, grouped by
    alertname; `external_url` is the worker's base URL (also each alert's generatorURL).

    ValueError when none of `events` is forwarded (see `forwarded`).
    """
    alerts = [alertmanager_alert(e, external_url) for e in events if forwarded(e)]
    if not alerts:
        states = ", ".join(sorted({e.state for e in events})) or "none"
        raise ValueError(f"no firing or resolved event to forward (states: {states})")
    names = {a["labels"]["alertname"] for a in alerts}
    group_labels = {"alertname": names.pop()} if len(names) == 1 else {}
    return {
        "version": "4",
        "groupKey": _group_key(group_labels),
        "truncatedAlerts": 0,
        "status": FIRING if any(a["status"] == FIRING for a in alerts) else RESOLVED,
        "receiver": RECEIVER,
        "groupLabels": group_labels,
        "commonLabels": _common([a["labels"] for a in alerts]),
        "commonAnnotations": _common([a["annotations"] for a in alerts]),
        "externalURL": external_url,
        "alerts": alerts,
    }


def webhook_urls(config: AlertConfig) -> list[str]:
    """The configured webhook URLs (`alert.webhook_urls`, comma-separated), in order."""
    return [u.strip() for u in config.webhook_urls.split(",") if u.strip()]


def redact_url(url: str) -> str:
    """The URL without a password in its user info, for logs and dead letters."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


@dataclass(frozen=True)
class DeliveryResult:
    """How delivering one event to one URL ended."""

    delivered: bool
    attempts: int
    last_error: str
    """Why the last failed attempt failed ('' when the first attempt succeeded)."""


class WebhookForwarder:
    """POSTs alert events to webhook URLs, retried with exponential backoff."""

    def __init__(
        self,
        config: AlertConfig,
        external_url: str = "",
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.external_url = external_url
        self._sleep = sleep
        self._timeout = aiohttp.ClientTimeout(total=config.webhook_timeout_s)
        self._headers = {
            "Content-Type": "application/json",
            "User-Agent": f"tracepipe/{__version__}",
        }

    def backoff_s(self, retry: int) -> float:
        """The wait before retry number `retry` (1: before the second attempt), in seconds."""
        initial_ms: int = self.config.webhook_initial_backoff_ms
        max_ms: int = self.config.webhook_max_backoff_ms
        return min(initial_ms << (retry - 1), max_ms) / 1000

    def body(self, event: AlertEvent) -> bytes:
        """The JSON body sent for `event` (the same bytes on every attempt)."""
        return json.dumps(alertmanager_payload([event], self.external_url)).encode()

    async def _attempt(self, session: aiohttp.ClientSession, url: str, body: bytes) -> str:
        """One POST; '' when the receiver answered 2xx, else why it failed."""
        try:
            async with session.post(url, data=body, headers=self._headers) as response:
                if 200 <= response.status < 300:
                    return ""
                return f"HTTP {response.status} {response.reason or ''}".rstrip()
        except TimeoutError:
            return f"no answer within alert.webhook_timeout_s={self.config.webhook_timeout_s:g}"
        except aiohttp.ClientError as err:
            return f"{type(err).__name__}: {err}"

    async def send(self, event: AlertEvent, url: str) -> DeliveryResult:
        """POST `event` to `url` until a 2xx answer or `webhook_max_attempts` POSTs."""
        body = self.body(event)
        attempts = self.config.webhook_max_attempts
        error = ""
        async with aiohttp.ClientSession(timeout=self._timeout) as session:
            for attempt in range(1, attempts + 1):
                if attempt > 1:
                    await self._sleep(self.backoff_s(attempt - 1))
                error = await self._attempt(session, url, body)
                if not error:
                    return DeliveryResult(True, attempt, "")
                if attempt < attempts:
                    log.warning(
                        "alert %s (%s) to %s: attempt %d of %d failed: %s; retrying in %g s",
                        event.fingerprint,
                        event.state,
                        redact_url(url),
                        attempt,
                        attempts,
                        error,
                        self.backoff_s(attempt),
                    )
        return DeliveryResult(False, attempts, error)

    async def deliver(self, event: AlertEvent, url: str) -> bool:
        """POST `event` to `url` with retries; False when every attempt failed."""
        return (await self.send(event, url)).delivered
