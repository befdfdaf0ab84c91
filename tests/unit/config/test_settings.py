"""Settings load from file and environment; each invalid config gives the error it must."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.config import Settings, load_settings, settings_table
from streams.errors import ConfigError
from streams.paths import data_home
from streams.warehouse import parse_url

TESTDATA = Path(__file__).parents[2] / "testdata" / "config"
EXPECTED_ERRORS: dict[str, str] = json.loads((TESTDATA / "invalid" / "errors.json").read_text())


def test_defaults_run_on_one_machine() -> None:
    settings = load_settings(env={})
    defaults = Settings()
    assert (settings.kafka, settings.sink, settings.assembly) == (
        defaults.kafka,
        defaults.sink,
        defaults.assembly,
    )
    assert settings.kafka.bootstrap == "127.0.0.1:9092"
    assert settings.clickhouse.url.startswith("chdb://")


def test_default_data_lives_in_one_home_whatever_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"TRACEPIPE_HOME": str(tmp_path / "home")}
    seen = []
    for where in ("a", "b/c"):
        (tmp_path / where).mkdir(parents=True)
        monkeypatch.chdir(tmp_path / where)
        settings = load_settings(env=env)
        seen.append(
            (settings.clickhouse.url, settings.local_kafka.data_dir, settings.worker.data_dir)
        )
    home = tmp_path / "home"
    assert seen[0] == seen[1] == (f"chdb://{home}/chdb", f"{home}/kafka", f"{home}/worker")


@pytest.mark.parametrize(
    ("env", "home"),
    [
        ({"TRACEPIPE_HOME": "/srv/tp", "XDG_DATA_HOME": "/x", "HOME": "/u"}, "/srv/tp"),
        ({"TRACEPIPE_HOME": "rel", "HOME": "/u"}, "{cwd}/rel"),
        ({"XDG_DATA_HOME": "/x", "HOME": "/u"}, "/x/tracepipe"),
        # The XDG spec: a relative XDG_DATA_HOME is invalid and ignored.
        ({"XDG_DATA_HOME": "x", "HOME": "/u"}, "/u/.local/share/tracepipe"),
        ({"HOME": "/u"}, "/u/.local/share/tracepipe"),
    ],
)
def test_data_home(
    env: dict[str, str], home: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert data_home(env) == Path(home.format(cwd=tmp_path))
    assert load_settings(env=env).worker.data_dir == home.format(cwd=tmp_path) + "/worker"


def test_relative_paths_the_user_gives_are_relative_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "tracepipe.toml"
    config.write_text(
        '[worker]\ndata_dir = "state"\n[alert]\nrules_file = "$TRACEPIPE_HOME/r.yaml"\n'
    )
    env = {
        "TRACEPIPE_HOME": "/srv/tp",
        "TRACEPIPE_CLICKHOUSE_URL": "chdb://data/ch%20db",
        "TRACEPIPE_LOCAL_KAFKA_DATA_DIR": "../kafka",
    }
    settings = load_settings(config, env=env)
    assert settings.clickhouse.url == f"chdb://{tmp_path}/data/ch%20db"
    assert parse_url(settings.clickhouse.url).path == f"{tmp_path}/data/ch db"
    assert settings.local_kafka.data_dir == str(tmp_path.parent / "kafka")
    assert settings.worker.data_dir == str(tmp_path / "state")
    assert settings.alert.rules_file == "/srv/tp/r.yaml"
    # Settings that are not paths, and paths left empty, stay as given.
    server = load_settings(env={"TRACEPIPE_CLICKHOUSE_URL": "clickhouse://h:9000/db"})
    assert server.clickhouse.url == "clickhouse://h:9000/db"
    assert server.clickhouse.fault_file == "" and server.alert.rules_file == ""


def test_file_then_environment_override() -> None:
    settings = load_settings(
        TESTDATA / "valid" / "full.toml", env={"TRACEPIPE_KAFKA_PARTITIONS": "3"}
    )
    assert settings.kafka.bootstrap == "broker-1:9092,broker-2:9092"
    assert settings.kafka.partitions == 3  # the environment wins over the file
    assert settings.clickhouse.ttl_days == 7
    assert settings.sink.batch_max_spans == 2000


def test_yaml_file() -> None:
    settings = load_settings(TESTDATA / "valid" / "minimal.yaml", env={})
    assert settings.worker.app_id == "tracepipe-prod"
    assert settings.worker.web_port == 7000


def test_config_file_from_environment() -> None:
    env = {"TRACEPIPE_CONFIG": str(TESTDATA / "valid" / "minimal.yaml")}
    assert load_settings(env=env).worker.web_port == 7000


def test_two_word_section_from_environment() -> None:
    settings = load_settings(env={"TRACEPIPE_LOCAL_KAFKA_PORT": "19092"})
    assert settings.local_kafka.port == 19092
    assert settings.kafka == Settings().kafka


@pytest.mark.parametrize("name", sorted(EXPECTED_ERRORS))
def test_invalid_config_names_key_and_fix(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(TESTDATA / "invalid" / name, env={})
    assert EXPECTED_ERRORS[name] in str(info.value)


def test_every_invalid_file_has_an_expected_error() -> None:
    files = {p.name for p in (TESTDATA / "invalid").iterdir() if p.suffix != ".json"}
    assert files == set(EXPECTED_ERRORS)


def test_invalid_environment_value() -> None:
    with pytest.raises(ConfigError, match="TRACEPIPE_WORKER_WEB_PORT"):
        load_settings(env={"TRACEPIPE_WORKER_WEB_PORT": "70000"})


def test_removed_setting_from_environment_says_it_is_gone() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={"TRACEPIPE_ASSEMBLY_COMPACT_SPANS": "false"})
    message = str(info.value)
    assert "assembly.compact_spans was removed and needs no replacement" in message
    assert "unset TRACEPIPE_ASSEMBLY_COMPACT_SPANS" in message
    assert "\n" not in message


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings("/nonexistent/tracepipe.toml", env={})


def test_settings_are_frozen() -> None:
    settings = load_settings(env={})
    with pytest.raises(AttributeError):
        settings.kafka.partitions = 3  # type: ignore[misc]


def test_table_lists_every_knob() -> None:
    keys = {row[0] for row in settings_table()}
    assert {"kafka.bootstrap", "clickhouse.url", "sink.batch_max_spans", "worker.app_id"} <= keys
    assert all(row[1].startswith("TRACEPIPE_") for row in settings_table())
