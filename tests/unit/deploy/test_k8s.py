"""deploy/k8s: the kustomization's manifests name real settings, commands, probe paths and
ports, and one `replicas` edit scales the workers."""

from __future__ import annotations

import re
from typing import Any

from streams.cli import build_parser
from streams.config import load_settings, settings_table
from streams.warehouse import parse_url
from streams.worker.health import LIVENESS_PATH, READINESS_PATH
from tests.unit.deploy.stack import (
    K8S_DIR,
    ROOT,
    generated_env,
    k8s_resource,
    k8s_resources,
    kustomization,
    worker_container,
)

KNOWN = {env for _key, env, _default, _doc in settings_table()}
LABELS = {"app.kubernetes.io/name": "tracepipe", "app.kubernetes.io/component": "worker"}


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = k8s_resource("Deployment")["spec"]["template"]["spec"]
    return spec


def worker_env() -> dict[str, str]:
    """Every variable the worker container gets from the generated ConfigMap and Secret."""
    config = generated_env("configMapGenerator")
    secrets = generated_env("secretGenerator")
    env: dict[str, str] = {}
    for source in worker_container()["envFrom"]:
        if "configMapRef" in source:
            env.update(config[source["configMapRef"]["name"]])
        else:
            env.update(secrets[source["secretRef"]["name"]])
    return env


def test_kustomization_lists_files_that_exist() -> None:
    files = [*kustomization()["resources"]]
    for generator in ("configMapGenerator", "secretGenerator"):
        files += [f for entry in kustomization()[generator] for f in entry["envs"]]
    assert all((K8S_DIR / name).is_file() for name in files)
    assert {r["kind"] for r in k8s_resources()} == {"Deployment", "PodDisruptionBudget"}


def test_replicas_are_one_edit_in_the_kustomization() -> None:
    (replicas,) = kustomization()["replicas"]
    assert replicas["name"] == k8s_resource("Deployment")["metadata"]["name"]
    assert "replicas" not in k8s_resource("Deployment")["spec"]  # nothing else to keep in step
    settings = load_settings(env=worker_env())
    assert 1 <= replicas["count"] <= settings.kafka.partitions


def test_configmap_and_secret_are_valid_settings() -> None:
    env = worker_env()
    assert set(env) <= KNOWN, set(env) - KNOWN
    settings = load_settings(env=env)
    assert parse_url(settings.clickhouse.url).scheme == "clickhouse"
    # The ClickHouse URL carries a password: it is in the Secret, nothing else is.
    (secret,) = generated_env("secretGenerator").values()
    assert set(secret) == {"TRACEPIPE_CLICKHOUSE_URL"}
    assert "env" not in worker_container()


def test_containers_run_real_commands_of_the_image() -> None:
    parser = build_parser()
    (migrate,) = pod_spec()["initContainers"]
    assert parser.parse_args(migrate["args"]).command == "db"
    assert migrate["args"] == ["db", "migrate"]
    assert migrate["envFrom"] == worker_container()["envFrom"]
    assert parser.parse_args(worker_container()["args"]).command == "worker"
    (image,) = kustomization()["images"]
    assert {c["image"] for c in (migrate, worker_container())} == {image["name"]}


def test_probes_ask_the_worker_on_its_web_port() -> None:
    container = worker_container()
    settings = load_settings(env=worker_env())
    (port,) = container["ports"]
    assert (port["name"], port["containerPort"]) == ("web", settings.worker.web_port)
    probes = {name: container[name]["httpGet"] for name in ("startupProbe", "livenessProbe")}
    probes["readinessProbe"] = container["readinessProbe"]["httpGet"]
    assert {name: (p["path"], p["port"]) for name, p in probes.items()} == {
        "startupProbe": (LIVENESS_PATH, "web"),
        "livenessProbe": (LIVENESS_PATH, "web"),
        "readinessProbe": (READINESS_PATH, "web"),
    }
    # A probe times out after the readiness check's own bound on ClickHouse, not before.
    assert container["readinessProbe"]["timeoutSeconds"] > 3
    annotations = k8s_resource("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(settings.worker.web_port)


def test_pods_are_sized_non_root_and_given_time_to_stop() -> None:
    spec = pod_spec()
    assert spec["terminationGracePeriodSeconds"] >= 30
    resources = worker_container()["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]
    dockerfile = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    (user,) = re.findall(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)
    security = spec["securityContext"]
    assert security["runAsNonRoot"] is True
    assert (str(security["runAsUser"]), str(security["runAsGroup"])) == user
    # The worker's data dir (set by the image) is on the writable volume.
    data_dir = re.search(r"TRACEPIPE_WORKER_DATA_DIR=(\S+)", dockerfile)
    assert data_dir is not None
    (mount,) = worker_container()["volumeMounts"]
    assert data_dir.group(1).startswith(mount["mountPath"] + "/")


def test_labels_select_the_workers_everywhere() -> None:
    deployment = k8s_resource("Deployment")
    budget = k8s_resource("PodDisruptionBudget")
    assert deployment["spec"]["selector"]["matchLabels"] == LABELS
    assert deployment["spec"]["template"]["metadata"]["labels"] == LABELS
    assert budget["spec"]["selector"]["matchLabels"] == LABELS
    assert budget["spec"]["maxUnavailable"] == 1
    (spread,) = pod_spec()["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"] == LABELS
