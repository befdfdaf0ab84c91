"""Settings of ingest: the validation limits of incoming spans."""

from __future__ import annotations

from dataclasses import dataclass

from streams.config.setting import positive, setting


@dataclass(frozen=True)
class IngestConfig:
    """Validation limits for incoming spans: what is repaired (truncated) and what is rejected."""

    max_record_bytes: int = setting(1_048_576, "larger records go to the DLQ (record-too-large)")
    max_attributes: int = setting(
        128, "attributes kept per span/event/link; the rest counted as dropped"
    )
    max_attribute_value_bytes: int = setting(
        4096, "longer string/bytes values are truncated with a marker"
    )
    max_events: int = setting(128, "events kept per span; the rest counted as dropped")
    max_links: int = setting(128, "links kept per span; the rest counted as dropped")

    def validate(self) -> None:
        """Raise ConfigError naming the first bad key."""
        for name in (
            "max_record_bytes",
            "max_attributes",
            "max_attribute_value_bytes",
            "max_events",
            "max_links",
        ):
            positive("ingest", name, getattr(self, name))
