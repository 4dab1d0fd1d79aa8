"""infra/serve/config.yaml, validated by Ray Serve's own config schema."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
import yaml
from ray.serve.schema import (
    DeploymentSchema,
    HTTPOptionsSchema,
    RayActorOptionsSchema,
    ServeApplicationSchema,
    ServeDeploySchema,
)

from .promql import INFRA

SERVE_CONFIG = INFRA / "serve/config.yaml"


def unknown_keys(config: dict[str, Any]) -> list[str]:
    """Keys Serve's schema does not define; its models silently ignore them, we do not."""
    found = [f"top.{k}" for k in config if k not in ServeDeploySchema.model_fields]
    found += [
        f"http_options.{k}"
        for k in config.get("http_options", {})
        if k not in HTTPOptionsSchema.model_fields
    ]
    for app in config.get("applications", []):
        found += [f"app.{k}" for k in app if k not in ServeApplicationSchema.model_fields]
        for dep in app.get("deployments", []):
            found += [f"deployment.{k}" for k in dep if k not in DeploymentSchema.model_fields]
            found += [
                f"ray_actor_options.{k}"
                for k in dep.get("ray_actor_options", {})
                if k not in RayActorOptionsSchema.model_fields
            ]
    return found


def validate_serve_config(config: dict[str, Any]) -> ServeDeploySchema:
    """Parse a `serve deploy` config with Ray's schema, refusing unknown keys too."""
    assert unknown_keys(config) == []
    return ServeDeploySchema.model_validate(config)


def test_unknown_keys_are_reported():
    config = yaml.safe_load(SERVE_CONFIG.read_text())
    config["applications"][0]["deployments"][0]["max_concurent_requests"] = 1
    assert unknown_keys(config) == ["deployment.max_concurent_requests"]


def test_serve_config_deploys_the_evalcluster_app_at_root():
    schema = validate_serve_config(yaml.safe_load(SERVE_CONFIG.read_text()))
    (app,) = schema.applications
    assert app.import_path == "evalcluster.serve.app:build_app"
    assert app.route_prefix == "/"
    assert set(app.args) <= {"store_uri", "tracking_uri", "api_keys_file", "max_body_bytes"}
    assert app.args["store_uri"].startswith("s3://")
    (deployment,) = app.deployments
    assert deployment.max_ongoing_requests >= 100
    assert deployment.max_queued_requests >= deployment.max_ongoing_requests


def test_serve_config_holds_no_secret():
    text = SERVE_CONFIG.read_text().lower()
    for word in ("api_key:", "password", "secret_access_key", "sk-", "bearer "):
        assert word not in text


def _deployment_names(app: Any) -> set[str]:
    """Names of the deployments an Application binds, its ingress and what it composes."""
    from ray.serve import Application

    bound = app._bound_deployment
    names = {bound.name}
    for arg in [*bound.init_args, *bound.init_kwargs.values()]:
        if isinstance(arg, Application):
            names |= _deployment_names(arg)
    return names


@pytest.mark.skipif(
    importlib.util.find_spec("evalcluster.serve.app") is None,
    reason="evalcluster.serve.app is not written yet",
)
def test_configured_deployment_names_exist_in_the_app(tmp_path):
    from evalcluster.serve.app import build_app

    keys = tmp_path / "keys"
    keys.write_text("test-key-not-secret\n")
    app = build_app(
        {"store_uri": str(tmp_path / "store"), "tracking_uri": "none", "api_keys_file": str(keys)}
    )
    config = yaml.safe_load(SERVE_CONFIG.read_text())
    configured = {d["name"] for d in config["applications"][0]["deployments"]}
    assert configured <= _deployment_names(app)
