"""The deploy files as data for the tests: the compose services (interpolated as Compose would
with an empty environment), the kustomize resources and generated env, the Grafana dashboard's
queries, and the worker paths the probes name."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
K8S_DIR = ROOT / "deploy" / "k8s"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD_FILE = GRAFANA_DIR / "dashboards" / "tracepipe.json"

# Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}; $$ is a literal $.
_COMPOSE_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?-)([^}]*))?\}")
_URL_PATH = re.compile(r"https?://[^/\s'\"]+(/[\w/.-]*)")


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """`value` with Compose's variable syntax substituted from `env` (recursively)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, default = match.group(1), match.group(2), match.group(3) or ""
        given = env.get(name)
        if operator == ":-" and not given:
            return default
        if operator == "-" and given is None:
            return default
        return given or ""

    return _COMPOSE_VARIABLE.sub(substitute, value)


def compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """docker-compose.yml as Compose reads it (YAML merge keys, variables from `env`)."""
    loaded: dict[str, Any] = interpolate(yaml.safe_load(COMPOSE_FILE.read_text()), env or {})
    return loaded


def kustomization() -> dict[str, Any]:
    """deploy/k8s/kustomization.yaml."""
    loaded: dict[str, Any] = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    return loaded


def k8s_resources() -> list[dict[str, Any]]:
    """Every manifest the kustomization lists, in order."""
    resources: list[dict[str, Any]] = []
    for name in kustomization()["resources"]:
        resources.extend(d for d in yaml.safe_load_all((K8S_DIR / name).read_text()) if d)
    return resources


def k8s_resource(kind: str) -> dict[str, Any]:
    """The one manifest of `kind`."""
    (found,) = [r for r in k8s_resources() if r["kind"] == kind]
    return found


def read_env_file(path: Path) -> dict[str, str]:
    """A kustomize env file: KEY=VALUE lines; blank lines and # comments skipped."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        text = line.strip()
        if text and not text.startswith("#"):
            key, _, value = text.partition("=")
            values[key] = value
    return values


def generated_env(generator: str) -> dict[str, dict[str, str]]:
    """By name, the variables of each configMapGenerator or secretGenerator entry."""
    return {
        entry["name"]: {
            key: value
            for env_file in entry.get("envs", [])
            for key, value in read_env_file(K8S_DIR / env_file).items()
        }
        for entry in kustomization().get(generator, [])
    }


def worker_container() -> dict[str, Any]:
    """The worker container of the Kubernetes Deployment."""
    spec = k8s_resource("Deployment")["spec"]["template"]["spec"]
    (container,) = [c for c in spec["containers"] if c["name"] == "worker"]
    found: dict[str, Any] = container
    return found


def probe_paths() -> set[str]:
    """Every worker HTTP path the compose health check and the Kubernetes probes request."""
    paths: set[str] = set()
    check = compose()["services"]["worker"]["healthcheck"]["test"]
    paths.update(_URL_PATH.findall(" ".join(check)))
    container = worker_container()
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        paths.add(container[probe]["httpGet"]["path"])
    return paths


def dashboard() -> dict[str, Any]:
    """The provisioned Grafana dashboard."""
    loaded: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
    return loaded


def dashboard_queries(board: dict[str, Any]) -> dict[str, str]:
    """Every rawSql of the dashboard by where it is: `panel <title>/<refId>`,
    `variable <name>`, `annotation <name>`."""
    queries: dict[str, str] = {}
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            queries[f"panel {panel['title']}/{target['refId']}"] = target["rawSql"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            queries[f"variable {variable['name']}"] = variable["query"]
    for annotation in board["annotations"]["list"]:
        if "target" in annotation:
            queries[f"annotation {annotation['name']}"] = annotation["target"]["rawSql"]
    return queries
