"""Where tracepipe's files live: the shipped ones (Avro schemas, ClickHouse DDL, default alert
rules) and the data home that holds the local broker's, chDB's and the worker's data.

Path settings resolve the same way everywhere (docs/ARCHITECTURE.md, "Data home"): a value that
starts with `$TRACEPIPE_HOME` is under the data home, `~` is the user's home, and any other
relative path is relative to the current directory when the settings are read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from streams.errors import ConfigError

HOME_VARIABLE = "TRACEPIPE_HOME"
"""The environment variable that names the data home."""

IN_HOME = "$" + HOME_VARIABLE
"""The prefix of a path setting that lives under the data home (the defaults use it)."""

HOME_DEFAULT = "$XDG_DATA_HOME/tracepipe, else ~/.local/share/tracepipe"
"""The data home when TRACEPIPE_HOME is not set, as documentation says it."""


def schemas_root() -> Path:
    """The schemas/ directory: `TRACEPIPE_SCHEMAS_DIR`, else the one beside the package."""
    override = os.environ.get("TRACEPIPE_SCHEMAS_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "schemas"


def deploy_root() -> Path:
    """The deploy/ directory (built-in alert rules): `TRACEPIPE_DEPLOY_DIR`, else the one beside
    the package."""
    override = os.environ.get("TRACEPIPE_DEPLOY_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "deploy"


def _user_home(env: Mapping[str, str]) -> Path:
    home = env.get("HOME")
    if home:
        return Path(home)
    try:
        return Path.home()
    except RuntimeError as err:  # no HOME and no passwd entry (a container's random uid)
        raise ConfigError(
            f"cannot tell where tracepipe's data goes: no home directory; set {HOME_VARIABLE}"
        ) from err


def data_home(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path:
    """The data home: `TRACEPIPE_HOME`, else `$XDG_DATA_HOME/tracepipe`, else
    `~/.local/share/tracepipe` (absolute; nothing is created here)."""
    env = os.environ if env is None else env
    given = env.get(HOME_VARIABLE, "").strip()
    if given:
        return _absolute(Path(given).expanduser(), cwd)
    # The XDG base directory spec: a relative XDG_DATA_HOME is invalid and ignored.
    xdg = env.get("XDG_DATA_HOME", "").strip()
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "tracepipe"
    return _user_home(env) / ".local" / "share" / "tracepipe"


def _absolute(path: Path, cwd: Path | None) -> Path:
    if path.is_absolute():
        return Path(os.path.normpath(path))
    return Path(os.path.normpath((cwd or Path.cwd()) / path))


def resolve_path(
    text: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Path:
    """A path setting as an absolute path: `$TRACEPIPE_HOME/...` under the data home, `~/...`
    under the user's home, anything else relative to `cwd` (default: the current directory)."""
    if text == IN_HOME or text.startswith(IN_HOME + "/"):
        return data_home(env, cwd) / text[len(IN_HOME) :].lstrip("/")
    return _absolute(Path(text).expanduser(), cwd)
