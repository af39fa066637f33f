"""docker/helm-values.yaml (CeleryExecutor) and docker/helm-values-kubernetes.yaml, checked without a
cluster: every key is one the official chart has (helm_chart/values-keys.txt, read off the chart), the
environment is docker/airflow.env entry for entry, the image is the Dockerfile's at this package's version,
workers keep no volume, and nothing secret is written out (connections come from a Secret)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.packaging.compose_checks import DOCKER, locked_version, pyproject, read_env_file

CHART_KEYS = {line.strip() for line in (Path(__file__).parent / "helm_chart" / "values-keys.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
#: Settings the values files add to airflow.env: where this deployment's store is.
DEPLOYMENT_ONLY = {"AIRFLOW_DATASYNC_MANIFEST_STORE"}
FILES = {"CeleryExecutor": "helm-values.yaml", "KubernetesExecutor": "helm-values-kubernetes.yaml"}


def key_paths(values: dict, prefix: str = "") -> set[str]:
    """Dotted paths of every leaf (a list or a string counts as a leaf)."""
    paths = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        paths |= key_paths(value, path + ".") if isinstance(value, dict) and value else {path}
    return paths


@pytest.fixture(params=sorted(FILES), ids=lambda executor: FILES[executor])
def values(request) -> tuple[str, dict]:
    return request.param, yaml.safe_load((DOCKER / FILES[request.param]).read_text())


def test_every_key_is_one_the_chart_has(values):
    _, doc = values
    unknown = key_paths(doc) - CHART_KEYS
    assert not unknown, f"not keys of the official chart's values: {sorted(unknown)}"


def test_env_is_airflow_env_entry_for_entry(values):
    executor, doc = values
    assert doc["executor"] == executor
    env = {item["name"]: item["value"] for item in doc["env"]}
    assert len(env) == len(doc["env"]), "a name is set twice"
    expected = dict(read_env_file(), AIRFLOW__CORE__EXECUTOR=executor)
    assert {k: v for k, v in env.items() if k not in DEPLOYMENT_ONLY} == expected
    assert env["AIRFLOW_DATASYNC_MANIFEST_STORE"].startswith("s3://")  # workers share no disk


def test_image_and_versions_are_the_dockerfiles(values):
    _, doc = values
    assert doc["airflowVersion"] == locked_version("apache-airflow")
    assert doc["images"]["airflow"]["tag"] == pyproject()["project"]["version"]
    assert doc["images"]["airflow"]["repository"].endswith("/airflow-datasync")


def test_workers_keep_nothing_and_secrets_come_from_a_secret(values):
    executor, doc = values
    if executor == "CeleryExecutor":
        assert doc["workers"]["persistence"]["enabled"] is False
        assert doc["workers"]["replicas"] >= 2
        assert "celery worker --queues default,smb" in doc["workers"]["args"][-1]
    assert doc["dags"]["persistence"]["enabled"] is False and doc["logs"]["persistence"]["enabled"] is False
    env_from = yaml.safe_load(doc["extraEnvFrom"])
    assert env_from == [{"secretRef": {"name": "airflow-datasync-connections"}}]
    text = (DOCKER / FILES[executor]).read_text()
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for word in ("password", "AIRFLOW_CONN_", "SECRET_ACCESS_KEY"):
        assert word not in body, f"{word} outside comments of {FILES[executor]}"
