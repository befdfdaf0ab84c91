"""The Docker stack names real settings and files, so it cannot drift from the code unseen."""

from __future__ import annotations

from pathlib import Path

import yaml

from streams.config import settings_table

ROOT = Path(__file__).parents[2]


def test_compose_services_and_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "clickhouse", "worker"} <= set(services)
    known = {env for _key, env, _default, _doc in settings_table()}
    worker_env = services["worker"]["environment"]
    assert set(worker_env) <= known, set(worker_env) - known
    assert worker_env["TRACEPIPE_CLICKHOUSE_URL"].startswith("clickhouse://")
    assert (ROOT / services["worker"]["build"]["dockerfile"]).is_file()
    assert services["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_dockerfile_copies_what_the_package_needs() -> None:
    text = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    for needed in ("COPY streams", "COPY schemas", "TRACEPIPE_SCHEMAS_DIR"):
        assert needed in text
