"""Several workers' embedded stores read as one, as a shared ClickHouse server would hold them.

Each worker of a multi-worker test has its own chDB store (an embedded engine belongs to one
process). A deployment with several workers shares one ClickHouse server; to see what its users
would see, every user-facing table of each store is copied into one fresh, migrated store. chDB
runs one engine per process, so each export and the import run in a child process:
`python -m tests.reliability.stores export STORE DIR` and `... import STORE FILE...`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from streams.warehouse.chdb_backend import ChdbWarehouse
from streams.warehouse.migrate import migrate

TABLES = (
    "otel_traces",
    "tracepipe_traces",
    "tracepipe_critical_path",
    "tracepipe_latency",
    "tracepipe_edges",
    "tracepipe_error_origins",
    "tracepipe_error_origin_windows",
    "tracepipe_alerts",
)
"""Tables a worker writes (the trace-id lookup table follows otel_traces by its view)."""

TTL_DAYS = 5000


def combine_stores(stores: list[Path], into: Path, scratch: Path) -> None:
    """Copy every row of `TABLES` from each store into a fresh migrated store at `into`."""
    scratch.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    for i, store in enumerate(stores):
        out = scratch / f"store{i}"
        out.mkdir(exist_ok=True)
        _child("export", str(store), str(out))
        files.extend(str(out / f"{table}.native") for table in TABLES)
    _child("import", str(into), *files)


def _child(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "tests.reliability.stores", *args], check=True)


def _export(store: str, out: str) -> None:
    with ChdbWarehouse(store) as warehouse:
        # A member stopped before its first insert never migrated its store: it holds nothing.
        migrate(warehouse, TTL_DAYS)
        for table in TABLES:
            warehouse.execute(
                f"SELECT * FROM {table} INTO OUTFILE '{out}/{table}.native' TRUNCATE FORMAT Native"
            )


def _import(store: str, files: list[str]) -> None:
    with ChdbWarehouse(store) as warehouse:
        migrate(warehouse, TTL_DAYS)
        for path in files:
            table = Path(path).name.removesuffix(".native")
            warehouse.execute(f"INSERT INTO {table} SELECT * FROM file('{path}', Native)")


if __name__ == "__main__":
    command, target, *rest = sys.argv[1:]
    if command == "export":
        _export(target, rest[0])
    else:
        _import(target, rest)
