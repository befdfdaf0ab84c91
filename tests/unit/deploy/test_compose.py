"""docker-compose.yml, the image and the Grafana provisioning name real settings, commands and
files, so they cannot drift from the code unseen. (No Docker engine runs where the tests run:
these checks read the files as Compose and Grafana would.)"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from streams.cli import build_parser
from streams.config import AggregationConfig, load_settings, settings_table
from streams.generate.incident import check_incidents, parse_incident
from streams.generate.topology import default_topology
from streams.warehouse import parse_url
from streams.worker.health import READINESS_PATH
from tests.unit.deploy.stack import DASHBOARD_FILE, ROOT, compose, dashboard

TRACEPIPE_SERVICES = ("migrate", "worker", "generator")
# Variables the image and tests read that are not settings: where the shipped files are.
PATH_VARIABLES = {"TRACEPIPE_SCHEMAS_DIR", "TRACEPIPE_DEPLOY_DIR", "TRACEPIPE_CONFIG"}
KNOWN = {env for _key, env, _default, _doc in settings_table()} | PATH_VARIABLES
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"


def services() -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"]
    return found


def dockerfile_env() -> dict[str, str]:
    """The ENV values the Dockerfile sets."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    pairs: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            pairs.update(re.findall(r"(\w+)=(\S+)", line))
    return pairs


def test_the_stack_has_every_part() -> None:
    assert set(services()) == {"kafka", "clickhouse", "migrate", "worker", "generator", "grafana"}


def test_images_are_pinned() -> None:
    for name, service in services().items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", (name, image)


def test_tracepipe_services_share_one_image_built_from_the_dockerfile() -> None:
    for name in TRACEPIPE_SERVICES:
        service = services()[name]
        assert service["image"] == "tracepipe:local"
        assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]) == DOCKERFILE


@pytest.mark.parametrize("name", TRACEPIPE_SERVICES)
def test_tracepipe_environment_is_valid_settings(name: str) -> None:
    env = services()[name]["environment"]
    assert set(env) <= KNOWN, set(env) - KNOWN
    settings = load_settings(env={**dockerfile_env(), **env})
    assert settings.kafka.bootstrap == "kafka:9092"
    url = parse_url(settings.clickhouse.url)
    assert (url.host, url.port, url.database) == ("clickhouse", 9000, "tracing")


def test_tracepipe_commands_parse_with_the_cli() -> None:
    parser = build_parser()
    for name in TRACEPIPE_SERVICES:
        parser.parse_args(services()[name]["command"])
    generate = parser.parse_args(services()["generator"]["command"])
    assert generate.command == "generate" and generate.rate > 0
    assert generate.duration == "0"  # until stopped: continuous load
    check_incidents([parse_incident(spec) for spec in generate.incident], default_topology())
    other = compose({"GENERATE_RATE": "50", "GENERATE_INCIDENT": "inventory:errors=20%@1m-4m"})
    given = parser.parse_args(other["services"]["generator"]["command"])
    assert (given.rate, given.incident) == (50.0, ["inventory:errors=20%@1m-4m"])


def test_workers_scale() -> None:
    worker = services()["worker"]
    assert "container_name" not in worker
    # Published without a host port: each replica gets its own.
    assert all(":" not in str(port) for port in worker.get("ports", []))
    assert worker["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def test_worker_health_check_asks_readiness_on_the_web_port() -> None:
    worker = services()["worker"]
    settings = load_settings(env={**dockerfile_env(), **worker["environment"]})
    check = " ".join(worker["healthcheck"]["test"])
    assert f"http://127.0.0.1:{settings.worker.web_port}{READINESS_PATH}" in check
    assert settings.worker.web_host == "0.0.0.0"
    assert services()["generator"]["depends_on"]["worker"] == {"condition": "service_healthy"}


def test_kafka_and_clickhouse_serve_what_the_workers_use() -> None:
    kafka = services()["kafka"]["environment"]
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "INTERNAL://kafka:9092" in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    clickhouse = services()["clickhouse"]["environment"]
    url = parse_url(services()["worker"]["environment"]["TRACEPIPE_CLICKHOUSE_URL"])
    assert (url.user, url.password, url.database) == (
        clickhouse["CLICKHOUSE_USER"],
        clickhouse["CLICKHOUSE_PASSWORD"],
        clickhouse["CLICKHOUSE_DB"],
    )


# --- Grafana ----------------------------------------------------------------------------------


def grafana_mounts() -> dict[PurePosixPath, str]:
    """Container path -> source (relative to the compose file) of Grafana's bind mounts."""
    mounts: dict[PurePosixPath, str] = {}
    for volume in services()["grafana"]["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            mounts[PurePosixPath(target)] = source
    return mounts


def host_path(container_path: str) -> Path:
    """The repository path a path inside the Grafana container is mounted from."""
    path = PurePosixPath(container_path)
    for target, source in grafana_mounts().items():
        if path == target or target in path.parents:
            return ROOT / source / path.relative_to(target)
    raise AssertionError(f"{container_path} is not mounted into Grafana")


def provisioning(kind: str) -> list[dict[str, Any]]:
    """The provisioning documents of `kind` (datasources, dashboards), as Grafana reads them."""
    folder = host_path(f"/etc/grafana/provisioning/{kind}")
    documents = [yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.yaml"))]
    assert documents, folder
    return documents


def test_grafana_installs_the_pinned_clickhouse_plugin() -> None:
    plugins = services()["grafana"]["environment"]["GF_INSTALL_PLUGINS"]
    plugin, version = plugins.split()
    assert plugin == "grafana-clickhouse-datasource" and re.fullmatch(r"\d+\.\d+\.\d+", version)
    (document,) = provisioning("datasources")
    (source,) = document["datasources"]
    assert source["type"] == plugin


def grafana_expand(value: Any, env: dict[str, str]) -> Any:
    """Grafana's substitution of $VAR / ${VAR} in provisioning values (an unset one fails)."""
    if isinstance(value, dict):
        return {k: grafana_expand(v, env) for k, v in value.items()}
    if isinstance(value, str):
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env[m.group(1) or m.group(2)], value)
    return value


def test_the_data_source_is_the_workers_clickhouse() -> None:
    (document,) = provisioning("datasources")
    (source,) = document["datasources"]
    source = grafana_expand(source, services()["grafana"]["environment"])
    url = parse_url(services()["worker"]["environment"]["TRACEPIPE_CLICKHOUSE_URL"])
    data = source["jsonData"]
    assert (data["host"], data["port"], data["protocol"]) == (url.host, url.port, "native")
    assert (data["username"], source["secureJsonData"]["password"]) == (url.user, url.password)
    assert data["defaultDatabase"] == url.database == data["traces"]["defaultDatabase"]
    assert data["traces"]["defaultTable"] == "otel_traces"
    assert source["uid"] == "tracepipe-clickhouse"


def test_the_dashboard_provider_loads_the_dashboard_file() -> None:
    (document,) = provisioning("dashboards")
    (provider,) = document["providers"]
    loaded = sorted(host_path(provider["options"]["path"]).glob("*.json"))
    assert loaded == [DASHBOARD_FILE]
    home = services()["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert host_path(home) == DASHBOARD_FILE
    (source,) = provisioning("datasources")[0]["datasources"]
    assert dashboard()["panels"][1]["datasource"]["uid"] == source["uid"]


def test_the_dashboards_window_is_the_workers() -> None:
    env = load_settings(env={**dockerfile_env(), **services()["worker"]["environment"]})
    (window,) = [v for v in dashboard()["templating"]["list"] if v["name"] == "window_s"]
    assert int(window["query"]) * 1000 == env.aggregation.window_ms == AggregationConfig().window_ms


# --- the image ----------------------------------------------------------------------------------


def test_dockerfile_builds_a_slim_non_root_image_of_the_cli() -> None:
    text = DOCKERFILE.read_text()
    (base,) = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base
    assert re.search(r"^USER 10001:10001$", text, re.MULTILINE)
    assert 'ENTRYPOINT ["tracepipe"]' in text
    env = dockerfile_env()
    assert {name for name in env if name.startswith("TRACEPIPE_")} <= KNOWN
    load_settings(env=env)
    assert env["TRACEPIPE_WORKER_WEB_HOST"] == "0.0.0.0"
    # The package finds its schemas and built-in rules where the image copies them.
    copies = dict(re.findall(r"^COPY (\S+) (\S+)$", text, re.MULTILINE))
    assert copies["schemas"] == "./schemas" and env["TRACEPIPE_SCHEMAS_DIR"] == "/app/schemas"
    assert (
        copies["deploy/alerts"] == "./deploy/alerts"
        and env["TRACEPIPE_DEPLOY_DIR"] == "/app/deploy"
    )


def test_the_build_context_keeps_what_the_dockerfile_copies() -> None:
    ignored = (ROOT / "deploy" / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    kept = {line[1:] for line in ignored if line.startswith("!")}
    copied = re.findall(r"^COPY (.+) \S+$", DOCKERFILE.read_text(), re.MULTILINE)
    sources = {source for line in copied for source in line.split()}
    assert sources == kept
    assert all((ROOT / source).exists() for source in sources)
