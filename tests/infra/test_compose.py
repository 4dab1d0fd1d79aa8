"""infra/compose: the docker compose cluster, its image and its env file.

`docker compose config` (or the older `docker-compose config`; Debian: apt-get install
docker-compose) resolves and validates the file against the Compose schema; the structural
checks below run with or without it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .promql import INFRA

COMPOSE = INFRA / "compose"
SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD", re.I)


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False
        ).returncode
        == 0
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


needs_compose = pytest.mark.skipif(
    _compose_command() is None, reason="neither `docker compose` nor `docker-compose` installed"
)


def _copy_infra(tmp_path: Path, *, with_env: bool) -> Path:
    shutil.copytree(INFRA, tmp_path / "infra")
    project = tmp_path / "infra/compose"
    if with_env:
        shutil.copy(project / ".env.example", project / ".env")
    return project


def _config(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_compose_command(), "config"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _compose() -> dict:
    return yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())


@needs_compose
def test_compose_config_resolves_with_the_example_env(tmp_path):
    result = _config(_copy_infra(tmp_path, with_env=True))
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert set(resolved["services"]) == {
        "ray-head",
        "ray-worker",
        "serve-deploy",
        "minio",
        "minio-init",
        "postgres",
        "mlflow",
        "prometheus",
        "grafana",
    }
    head_env = resolved["services"]["ray-head"]["environment"]
    assert head_env["RAY_AUTH_MODE"] == "token"
    assert head_env["AWS_ENDPOINT_URL"] == "http://minio:9000"


@needs_compose
def test_compose_refuses_to_start_without_the_secrets(tmp_path):
    result = _config(_copy_infra(tmp_path, with_env=False))
    assert result.returncode != 0
    assert "RAY_AUTH_TOKEN" in result.stderr


def test_services_wait_for_what_they_need():
    services = _compose()["services"]
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"
    assert services["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    head_deps = services["ray-head"]["depends_on"]
    assert head_deps["minio-init"]["condition"] == "service_completed_successfully"
    assert head_deps["mlflow"]["condition"] == "service_healthy"
    assert services["ray-worker"]["depends_on"]["ray-head"]["condition"] == "service_healthy"
    assert "mc mb --ignore-existing local/evalcluster" in services["minio-init"]["command"][0]


def test_published_ports_listen_on_loopback_only():
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on all interfaces"


def test_secrets_are_interpolated_from_env_never_written_inline():
    for name, service in _compose()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key) and key != "RAY_AUTH_MODE":
                assert re.fullmatch(r"\$\{[A-Z0-9_]+(:[-?][^}]*)?\}", str(value)), (name, key)


def test_env_example_holds_placeholders_only():
    entries = dict(
        line.split("=", 1)
        for line in (COMPOSE / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for key, value in entries.items():
        if SECRET_NAME.search(key):
            assert value == "" or value.startswith("replace-with") or key.endswith("ACCESS_KEY")
    referenced = set(re.findall(r"\$\{([A-Z0-9_]+)", (COMPOSE / "docker-compose.yml").read_text()))
    assert referenced <= set(entries), referenced - set(entries)


def test_ray_metric_ports_match_the_prometheus_scrape_config():
    services = _compose()["services"]
    assert "--metrics-export-port=8080" in services["ray-head"]["command"]
    assert "--metrics-export-port=8081" in services["ray-worker"]["command"]
    prometheus = (INFRA / "prometheus/prometheus.yml").read_text()
    assert '"ray-head:8080"' in prometheus
    assert "ray-tmp:/tmp/ray:ro" in services["prometheus"]["volumes"]
    assert "ray-tmp:/tmp/ray" in services["ray-head"]["volumes"]


def test_mounted_config_files_exist_in_the_repository():
    for service in _compose()["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE / source).exists(), source


def test_image_is_python_311_slim_with_the_package_installed():
    dockerfile = (COMPOSE / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim\n" in dockerfile
    assert "RUN pip install . psycopg2-binary" in dockerfile
    assert "USER ray" in dockerfile
    ignore = (COMPOSE / "Dockerfile.dockerignore").read_text()
    assert "infra/compose/.env" in ignore
