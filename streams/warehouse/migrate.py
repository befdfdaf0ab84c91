"""Schema migrations: the numbered DDL files under schemas/clickhouse/, applied once each, in order.

A file is ``NNNN_name.sql``; its version is the file name without ``.sql``. Statements are
separated by ``;`` at the end of a line; ``{ttl_days}`` is replaced by the configured TTL.
Each applied version is recorded (version, checksum, applied_at) in
``tracepipe_schema_migrations``; an applied file must never change (add a new file instead).
ClickHouse DDL is not transactional, so every statement must be idempotent
(``IF NOT EXISTS``): a file that failed halfway is simply run again. A statement that cannot
be (``EXCHANGE TABLES``, a copy) carries a comment line ``-- only if: <query>``: it runs only
when the query's first value is true, so it is skipped once its work is done.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from streams.config import Settings
from streams.errors import TracepipeError, WarehouseError
from streams.paths import schemas_root
from streams.warehouse import Warehouse, open_warehouse, quote_string, redact_url

MIGRATIONS_TABLE = "tracepipe_schema_migrations"

# Plain MergeTree syntax that every supported engine accepts (chDB and older servers alike).
_CREATE_MIGRATIONS_TABLE = f"""
CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE}
(
    version String,
    checksum String,
    applied_at DateTime
)
ENGINE = MergeTree() ORDER BY version
"""

_FILE_NAME = re.compile(r"^(\d+)_[A-Za-z0-9_.-]+\.sql$")
_STATEMENT_END = re.compile(r";[ \t]*(?:\r?\n|$)")
_ONLY_IF = re.compile(r"^--[ \t]*only if:[ \t]*(?P<query>\S.*?)[ \t]*$", re.MULTILINE)


@dataclass(frozen=True)
class Migration:
    """One DDL file: `version` (file stem), its `number`, raw `sql` text and its `checksum`."""

    version: str
    number: int
    path: Path
    sql: str
    checksum: str

    def statements(self, ttl_days: int) -> list[str]:
        """The file's statements with `{ttl_days}` substituted; comment-only chunks dropped."""
        text = self.sql.replace("{ttl_days}", str(int(ttl_days)))
        out: list[str] = []
        for chunk in _STATEMENT_END.split(text):
            lines = (ln.strip() for ln in chunk.splitlines())
            if any(ln and not ln.startswith("--") for ln in lines):
                out.append(chunk.strip())
        return out


def only_if(statement: str) -> str | None:
    """The query of a statement's ``-- only if:`` comment line, None when it has none."""
    match = _ONLY_IF.search(statement)
    return None if match is None else match.group("query")


def run_statement(warehouse: Warehouse, statement: str) -> bool:
    """Execute one migration statement unless its ``-- only if:`` query says no; True if run."""
    condition = only_if(statement)
    if condition is not None:
        rows = warehouse.query(condition)
        # No row (e.g. the table it asks about does not exist) counts as false.
        if not (rows and rows[0] and rows[0][0]):
            return False
    warehouse.execute(statement)
    return True


def default_root() -> Path:
    """The directory of the shipped DDL files: schemas/clickhouse/."""
    return schemas_root() / "clickhouse"


def checksum(text: str) -> str:
    """sha256 hex of a DDL file's text (line endings normalized, so a checkout's CRLF is equal)."""
    return hashlib.sha256(text.replace("\r\n", "\n").encode("utf-8")).hexdigest()


def load_migrations(root: Path | None = None) -> list[Migration]:
    """Every ``NNNN_name.sql`` under `root`, ordered by number; WarehouseError on a bad set."""
    directory = default_root() if root is None else root
    if not directory.is_dir():
        raise WarehouseError(
            f"DDL directory {directory} does not exist; set TRACEPIPE_SCHEMAS_DIR to the "
            "schemas/ directory that holds clickhouse/*.sql"
        )
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise WarehouseError(
                f"{path}: DDL files must be named NNNN_name.sql (number, underscore, name)"
            )
        text = path.read_text(encoding="utf-8")
        found.append(Migration(path.stem, int(match.group(1)), path, text, checksum(text)))
    found.sort(key=lambda m: (m.number, m.version))
    for earlier, later in itertools.pairwise(found):
        if earlier.number == later.number:
            raise WarehouseError(
                f"{earlier.path.name} and {later.path.name} share the number {later.number}; "
                "give each DDL file its own number"
            )
    return found


def _table_exists(warehouse: Warehouse) -> bool:
    rows = warehouse.query(
        "SELECT count() FROM system.tables "
        f"WHERE database = currentDatabase() AND name = {quote_string(MIGRATIONS_TABLE)}"
    )
    return bool(rows and rows[0][0])


def applied_records(warehouse: Warehouse) -> dict[str, tuple[str, datetime]]:
    """version -> (checksum, applied_at) for every recorded migration."""
    if not _table_exists(warehouse):
        return {}
    rows = warehouse.query(
        f"SELECT version, checksum, applied_at FROM {MIGRATIONS_TABLE} ORDER BY version"
    )
    return {str(v): (str(c), a) for v, c, a in rows}


def applied_versions(warehouse: Warehouse) -> list[str]:
    """The versions recorded as applied, in order."""
    return sorted(applied_records(warehouse))


def migrate(
    warehouse: Warehouse,
    ttl_days: int,
    root: Path | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[str]:
    """Apply the DDL files not applied yet, in order; return their versions (empty: up to date).

    Raises WarehouseError if an applied file's checksum changed, or if a statement fails
    (the versions before it stay applied and recorded).
    """
    if ttl_days <= 0:
        raise WarehouseError(f"ttl_days must be positive, got {ttl_days}")
    files = load_migrations(root)
    warehouse.execute(_CREATE_MIGRATIONS_TABLE)
    done = applied_records(warehouse)
    for migration in files:
        recorded = done.get(migration.version)
        if recorded is not None and recorded[0] != migration.checksum:
            raise WarehouseError(
                f"{migration.path} changed after it was applied (recorded checksum "
                f"{recorded[0][:12]}, file now {migration.checksum[:12]}); applied DDL files "
                "must not change: restore it and put the change in a new numbered file"
            )
    applied: list[str] = []
    for migration in files:
        if migration.version in done:
            continue
        for statement in migration.statements(ttl_days):
            try:
                run_statement(warehouse, statement)
            except WarehouseError as err:
                raise WarehouseError(
                    f"migration {migration.version} failed ({migration.path}): {err}"
                ) from err
        warehouse.insert(
            MIGRATIONS_TABLE,
            ("version", "checksum", "applied_at"),
            [(migration.version, migration.checksum, now())],
        )
        applied.append(migration.version)
    return applied


def run_db_command(action: str, settings: Settings) -> int:
    """`tracepipe db migrate|status`: print one line per version; return the exit code.

    status exits 1 when a file is pending or changed, so scripts can check it.
    """
    if action not in ("migrate", "status"):
        print(f"error: unknown db action {action!r}; use migrate or status", file=sys.stderr)
        return 2
    config = settings.clickhouse
    try:
        warehouse = open_warehouse(config)
    except TracepipeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    try:
        if action == "migrate":
            applied = migrate(warehouse, config.ttl_days)
            for version in applied:
                print(f"applied  {version}")
            total = len(applied_versions(warehouse))
            print(f"{redact_url(config.url)}: {len(applied)} applied now, {total} in all")
            return 0
        records = applied_records(warehouse)
        status = 0
        for migration in load_migrations():
            recorded = records.get(migration.version)
            if recorded is None:
                print(f"pending  {migration.version}")
                status = 1
            elif recorded[0] != migration.checksum:
                print(f"CHANGED  {migration.version}  (file differs from what was applied)")
                status = 1
            else:
                print(f"applied  {migration.version}  {recorded[1]:%Y-%m-%d %H:%M:%S}Z")
        return status
    except TracepipeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        warehouse.close()
