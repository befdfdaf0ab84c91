"""Every command finds the same data from any directory: the default paths are in the data home
(TRACEPIPE_HOME), which `tracepipe config` prints; a command run elsewhere creates nothing
where it runs. The real CLI in subprocesses, on the real chDB engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from streams.paths import HOME_VARIABLE

PATH_VARIABLES = (
    "TRACEPIPE_CLICKHOUSE_URL",
    "TRACEPIPE_LOCAL_KAFKA_DATA_DIR",
    "TRACEPIPE_WORKER_DATA_DIR",
    "TRACEPIPE_CONFIG",
)


def tracepipe(cwd: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`tracepipe ARGS` run in `cwd` with the defaults under `home`."""
    env = {k: v for k, v in os.environ.items() if k not in PATH_VARIABLES}
    env[HOME_VARIABLE] = str(home)
    # No worker may answer for the store: the CLI has to open the data path itself.
    env["TRACEPIPE_WORKER_WEB_PORT"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_commands_from_any_directory_use_the_same_store(tmp_path: Path) -> None:
    home, here, elsewhere = tmp_path / "home", tmp_path / "here", tmp_path / "a" / "b"
    here.mkdir()
    elsewhere.mkdir(parents=True)

    migrated = tracepipe(here, home, "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert f"chdb://{home}/chdb" in migrated.stdout

    count = "SELECT count() AS n FROM tracepipe_schema_migrations"
    queried = tracepipe(elsewhere, home, "query", "sql", count)
    assert queried.returncode == 0, queried.stderr
    assert queried.stdout.split()[-1] == str(migrated.stdout.count("applied  "))
    assert (home / "chdb").is_dir()
    assert list(here.iterdir()) == [] and list(elsewhere.iterdir()) == []


def test_a_query_without_a_store_says_so_and_creates_none(tmp_path: Path) -> None:
    done = tracepipe(tmp_path, tmp_path / "home", "query", "count")
    assert done.returncode == 2
    assert done.stderr.startswith(f"tracepipe: error: no tracepipe data at {tmp_path}/home/chdb")
    assert "TRACEPIPE_HOME" in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_config_prints_the_data_home(tmp_path: Path) -> None:
    done = tracepipe(tmp_path, tmp_path / "home", "config")
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.split()[:2] == ["home", repr(str(tmp_path / "home"))]
    assert HOME_VARIABLE in first
    paths = {line.split()[0]: line.split()[1] for line in done.stdout.splitlines()[1:]}
    assert paths["clickhouse.url"] == repr(f"chdb://{tmp_path / 'home'}/chdb")
    assert paths["local_kafka.data_dir"] == repr(str(tmp_path / "home" / "kafka"))
