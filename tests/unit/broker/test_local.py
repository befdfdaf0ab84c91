"""The local broker launcher's pure parts: properties, pid file, port and tool checks (no JVM)."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.broker.kraft_files import (
    CLASSPATH_POM,
    LOG4J_VERSION,
    new_cluster_id,
    render_properties,
    server_properties,
)
from streams.broker.local import EXIT_NOT_RUNNING, LocalKafka, run_kafka_command
from streams.broker.probe import free_port, wait_for_broker
from streams.config import LocalKafkaConfig, Settings, load_settings
from streams.errors import BrokerError


def _config(tmp_path: Path, **values: object) -> LocalKafkaConfig:
    base: dict[str, object] = {
        "port": free_port(),
        "controller_port": free_port(),
        "data_dir": str(tmp_path / "data"),
        "cache_dir": str(tmp_path / "cache"),
    }
    base.update(values)
    return LocalKafkaConfig(**base)  # type: ignore[arg-type]


def _parse(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key: value for key, value in pairs}


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    """A socket bound and listening on a free port: someone else's server."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


def test_properties_single_node_kraft(tmp_path: Path) -> None:
    config = LocalKafkaConfig(host="127.0.0.1", port=29092, controller_port=0)
    props = server_properties(config, tmp_path / "storage")

    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:29093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29092"
    assert props["log.dirs"] == str(tmp_path / "storage")
    assert props["auto.create.topics.enable"] == "false"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["num.partitions"] == "1"


def test_properties_explicit_controller_port(tmp_path: Path) -> None:
    config = LocalKafkaConfig(port=29092, controller_port=31000)
    props = server_properties(config, tmp_path)
    assert props["controller.quorum.voters"] == "1@127.0.0.1:31000"
    assert props["listeners"].endswith("CONTROLLER://127.0.0.1:31000")


def test_render_properties_round_trips(tmp_path: Path) -> None:
    props = server_properties(LocalKafkaConfig(), tmp_path)
    assert _parse(render_properties(props)) == props


def test_cluster_id_is_base64url_of_16_bytes() -> None:
    ids = {new_cluster_id() for _ in range(50)}
    assert len(ids) == 50
    for cid in ids:
        assert len(cid) == 22
        assert "=" not in cid
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_paths_relative_to_cwd_and_home_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    broker = LocalKafka(LocalKafkaConfig(data_dir="rel/kafka", cache_dir="~/kcache"))
    assert broker.data_dir == tmp_path.resolve() / "rel" / "kafka"
    assert broker.cache_dir == (tmp_path / "home" / "kcache" / "3.9.1").resolve()
    assert broker.status().log_file.parent == broker.data_dir


def test_the_default_broker_is_the_same_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `kafka down` run elsewhere than `kafka up` must find the same pid file.
    monkeypatch.setenv("TRACEPIPE_HOME", str(tmp_path / "home"))
    # The default, not the data dir a CI run gives its own broker.
    monkeypatch.delenv("TRACEPIPE_LOCAL_KAFKA_DATA_DIR", raising=False)
    files = set()
    for where in ("a", "b"):
        (tmp_path / where).mkdir()
        monkeypatch.chdir(tmp_path / where)
        files.add(LocalKafka(load_settings().local_kafka).pid_file)
        files.add(LocalKafka(LocalKafkaConfig()).pid_file)
    assert files == {tmp_path / "home" / "kafka" / "kafka.pid"}


@pytest.mark.parametrize("content", ["", "not a pid", "-5", "0"])
def test_unreadable_pid_file_means_not_running(tmp_path: Path, content: str) -> None:
    broker = LocalKafka(_config(tmp_path))
    broker.data_dir.mkdir(parents=True)
    broker.pid_file.write_text(content)
    state = broker.status()
    assert not state.running
    assert state.pid is None


def test_dead_pid_is_stale_and_down_removes_it(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    broker = LocalKafka(_config(tmp_path))
    broker.data_dir.mkdir(parents=True)
    broker.pid_file.write_text(f"{proc.pid}\n")

    assert broker.read_pid() is None
    assert broker.down() is False
    assert not broker.pid_file.exists()


def test_live_pid_of_another_program_is_not_the_broker(tmp_path: Path) -> None:
    # Pids are reused: a pid file naming this very test process must not be trusted or killed.
    broker = LocalKafka(_config(tmp_path))
    broker.data_dir.mkdir(parents=True)
    broker.pid_file.write_text(f"{os.getpid()}\n")

    assert broker.status().running is False
    assert broker.down(timeout_s=0.1) is False
    assert not broker.pid_file.exists()


def test_port_taken_names_the_setting(tmp_path: Path, listening: socket.socket) -> None:
    port = listening.getsockname()[1]
    broker = LocalKafka(_config(tmp_path, port=port))
    with pytest.raises(BrokerError) as err:
        broker.up()
    message = str(err.value)
    assert f"127.0.0.1:{port} is already in use" in message
    assert "local_kafka.port" in message
    assert "TRACEPIPE_LOCAL_KAFKA_PORT" in message


def test_controller_port_taken_names_its_setting(tmp_path: Path, listening: socket.socket) -> None:
    broker = LocalKafka(_config(tmp_path, controller_port=listening.getsockname()[1]))
    with pytest.raises(BrokerError, match="TRACEPIPE_LOCAL_KAFKA_CONTROLLER_PORT"):
        broker.up()


def test_stale_pid_file_does_not_hide_port_check(tmp_path: Path, listening: socket.socket) -> None:
    broker = LocalKafka(_config(tmp_path, port=listening.getsockname()[1]))
    broker.data_dir.mkdir(parents=True)
    broker.pid_file.write_text("999999999\n")
    with pytest.raises(BrokerError, match="already in use"):
        broker.up()
    assert not broker.pid_file.exists()


@pytest.mark.parametrize("missing", ["java", "mvn"])
def test_missing_tool_gives_apt_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.setattr(
        shutil, "which", lambda tool: None if tool == missing else f"/usr/bin/{tool}"
    )
    broker = LocalKafka(_config(tmp_path))
    with pytest.raises(BrokerError) as err:
        broker.up()
    assert f"`{missing}` is not on PATH" in str(err.value)
    assert "apt-get install -y maven openjdk-17-jre-headless" in str(err.value)


def _seed_cache(broker: LocalKafka, jars: list[Path]) -> None:
    # What a successful Maven run leaves behind, so classpath() need not run Maven.
    broker.cache_dir.mkdir(parents=True)
    pom = CLASSPATH_POM.format(
        scala_version=broker.config.scala_version,
        version=broker.config.version,
        log4j_version=LOG4J_VERSION,
    )
    (broker.cache_dir / "pom.xml").write_text(pom)
    (broker.cache_dir / "classpath.txt").write_text(":".join(str(jar) for jar in jars))


def test_cached_classpath_skips_maven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    broker = LocalKafka(_config(tmp_path))
    jars = [tmp_path / "a.jar", tmp_path / "b.jar"]
    for jar in jars:
        jar.touch()
    _seed_cache(broker, jars)
    assert broker.classpath() == f"{jars[0]}:{jars[1]}"


def test_cached_classpath_with_missing_jar_resolves_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    broker = LocalKafka(_config(tmp_path))
    _seed_cache(broker, [tmp_path / "gone.jar"])
    with pytest.raises(BrokerError, match="`mvn` is not on PATH"):
        broker.classpath()


def test_cached_classpath_for_another_pom_resolves_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    broker = LocalKafka(_config(tmp_path))
    jar = tmp_path / "a.jar"
    jar.touch()
    _seed_cache(broker, [jar])
    (broker.cache_dir / "pom.xml").write_text("<project/>")
    with pytest.raises(BrokerError, match="`mvn` is not on PATH"):
        broker.classpath()


def test_wait_for_broker_times_out_on_closed_port() -> None:
    with pytest.raises(BrokerError, match="no Kafka broker answered"):
        wait_for_broker(f"127.0.0.1:{free_port()}", timeout_s=0.5)


def test_wait_for_broker_fails_fast_when_process_died() -> None:
    with pytest.raises(BrokerError, match="exited"):
        wait_for_broker(f"127.0.0.1:{free_port()}", timeout_s=30.0, alive=lambda: False)


def test_command_status_and_down_when_not_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(local_kafka=_config(tmp_path))
    assert run_kafka_command("status", settings) == EXIT_NOT_RUNNING
    assert "kafka 3.9.1 not running" in capsys.readouterr().out
    assert run_kafka_command("down", settings) == 0
    assert capsys.readouterr().out.strip() == "kafka was not running"


def test_command_rejects_unknown_action(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="up, down or status"):
        run_kafka_command("restart", Settings(local_kafka=_config(tmp_path)))
