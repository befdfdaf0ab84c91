"""The error hierarchy: one root, a few specific kinds, each message saying what to do."""

from __future__ import annotations


class TracepipeError(Exception):
    """Root of every error tracepipe raises on purpose."""


class ConfigError(TracepipeError):
    """A setting is missing or invalid; the message names the key and the fix."""


class SchemaError(TracepipeError):
    """An Avro schema cannot be loaded, or a record does not match its schema."""


class DecodeError(TracepipeError):
    """A record's bytes could not be turned into a span; carries a short machine reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class WarehouseError(TracepipeError):
    """ClickHouse refused or could not be reached."""


class BrokerError(TracepipeError):
    """The Kafka broker could not be started, reached or administered."""


class MissingDependencyError(TracepipeError):
    """An optional dependency is not installed; the message holds the pip command that fixes it."""


class InputError(TracepipeError):
    """What the user gave (a file, a trace id, a service name) cannot be used; the message says
    why and what would work. The CLI exits 1 on it, as when nothing is found."""


class QueryRefusedError(TracepipeError):
    """User SQL refused: not one read-only statement, or ClickHouse's readonly mode said no."""


class DataPathInUseError(WarehouseError):
    """A chDB data path is owned by another process; `owner` names it when its lock file says."""

    def __init__(self, path: str, owner: str | None, advice: str) -> None:
        super().__init__(
            f"chDB data path {path} is owned by {owner or 'another process'}; {advice}"
        )
        self.path = path
        self.owner = owner
