"""Settings of latency alerts: the rules file and the webhook forwarder."""

from __future__ import annotations

from dataclasses import dataclass

from streams.config.setting import path_setting, positive, setting
from streams.errors import ConfigError


@dataclass(frozen=True)
class AlertConfig:
    """Latency alerts on the merged windows: the rules file and the webhook forwarder."""

    rules_file: str = path_setting(
        "", "YAML alert rules, reloaded when it changes (empty: the built-in default rules)"
    )
    attribution_baseline_windows: int = setting(
        6, "windows before an incident whose slow traces an alert's attribution compares against"
    )
    webhook_urls: str = setting(
        "", "comma-separated URLs that get Alertmanager-compatible JSON (empty: none)"
    )
    webhook_timeout_s: float = setting(5.0, "timeout of one webhook POST")
    webhook_max_attempts: int = setting(
        6, "POSTs per alert event and URL before it is parked in the DLQ"
    )
    webhook_initial_backoff_ms: int = setting(500, "first retry delay of a failed webhook POST")
    webhook_max_backoff_ms: int = setting(30_000, "longest retry delay of a failed webhook POST")

    def validate(self) -> None:
        """Raise ConfigError naming the first bad key."""
        for name in (
            "attribution_baseline_windows",
            "webhook_timeout_s",
            "webhook_max_attempts",
            "webhook_initial_backoff_ms",
            "webhook_max_backoff_ms",
        ):
            positive("alert", name, getattr(self, name))
        for url in filter(None, (u.strip() for u in self.webhook_urls.split(","))):
            if not url.startswith(("http://", "https://")):
                raise ConfigError(
                    f"invalid alert.webhook_urls item {url!r}; should be an http(s) URL "
                    "(set TRACEPIPE_ALERT_WEBHOOK_URLS)"
                )
