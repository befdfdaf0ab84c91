"""Where the project's shipped files (Avro schemas, ClickHouse DDL, default alert rules) live."""

from __future__ import annotations

import os
from pathlib import Path


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
