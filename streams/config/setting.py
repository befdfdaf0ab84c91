"""A settings field with its documentation, and the check most fields share."""

from __future__ import annotations

from dataclasses import field
from typing import Any

from streams.errors import ConfigError

ENV_PREFIX = "TRACEPIPE_"


def setting(default: Any, doc: str) -> Any:
    """A settings field with its one-line documentation (shown by `tracepipe config`)."""
    return field(default=default, metadata={"doc": doc})


def path_setting(default: str, doc: str) -> Any:
    """A settings field holding a file system path, made absolute by `load_settings`."""
    return field(default=default, metadata={"doc": doc, "path": True})


def positive(section: str, key: str, value: float) -> None:
    """Raise ConfigError unless `value` of `section.key` is above 0."""
    if value <= 0:
        raise ConfigError(
            f"invalid {section}.{key}: {value!r}; should be positive "
            f"(set {ENV_PREFIX}{section.upper()}_{key.upper()})"
        )
