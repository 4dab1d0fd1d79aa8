"""infra/kuberay: RayJob and RayService manifests.

The Ray-specific fields are checked against the field names of KubeRay's v1 CRDs
(ray.io_rayjobs.yaml / ray.io_rayservices.yaml, KubeRay 1.5.1+), the pod templates against
the Kubernetes API models of the `kubernetes` package.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from .promql import DOCS, INFRA
from .test_serve_config import validate_serve_config

k8s_models = pytest.importorskip("kubernetes.client.models", reason="pip install kubernetes")

KUBERAY = INFRA / "kuberay"

RAYJOB_SPEC_FIELDS = {
    "activeDeadlineSeconds",
    "backoffLimit",
    "clusterSelector",
    "deletionStrategy",
    "entrypoint",
    "entrypointNumCpus",
    "entrypointNumGpus",
    "entrypointResources",
    "jobId",
    "managedBy",
    "metadata",
    "preRunningDeadlineSeconds",
    "rayClusterSpec",
    "runtimeEnvYAML",
    "shutdownAfterJobFinishes",
    "submissionMode",
    "submitterConfig",
    "submitterPodTemplate",
    "suspend",
    "ttlSecondsAfterFinished",
}
RAYSERVICE_SPEC_FIELDS = {
    "deploymentUnhealthySecondThreshold",
    "excludeHeadPodFromServeSvc",
    "managedBy",
    "rayClusterConfig",
    "rayClusterDeletionDelaySeconds",
    "serveConfigV2",
    "serveService",
    "serviceUnhealthySecondThreshold",
    "suspend",
    "upgradeStrategy",
}
CLUSTER_SPEC_FIELDS = {
    "authOptions",
    "autoscalerOptions",
    "enableInTreeAutoscaling",
    "gcsFaultToleranceOptions",
    "headGroupSpec",
    "headServiceAnnotations",
    "managedBy",
    "rayVersion",
    "suspend",
    "workerGroupSpecs",
}
HEAD_GROUP_FIELDS = {"enableIngress", "headService", "rayStartParams", "serviceType", "template"}
WORKER_GROUP_FIELDS = {
    "groupName",
    "idleTimeoutSeconds",
    "maxReplicas",
    "minReplicas",
    "numOfHosts",
    "rayStartParams",
    "replicas",
    "scaleStrategy",
    "suspend",
    "template",
}
WORKER_GROUP_REQUIRED = {"groupName", "maxReplicas", "minReplicas", "template"}
SUBMISSION_MODES = {"K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"}
SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD", re.I)


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((KUBERAY / name).read_text())


def unknown_k8s_fields(value: Any, type_name: str, path: str = "") -> list[str]:
    """Paths of keys that the Kubernetes model `type_name` (e.g. V1PodTemplateSpec) lacks."""
    if type_name.startswith(("list[", "List[")):
        inner = type_name[5:-1]
        return [
            e
            for i, item in enumerate(value)
            for e in unknown_k8s_fields(item, inner, f"{path}[{i}]")
        ]
    if type_name.startswith("dict(") or not type_name.startswith("V1"):
        return []
    model = getattr(k8s_models, type_name)
    by_json_name = {json: attr for attr, json in model.attribute_map.items()}
    errors = []
    for key, item in value.items():
        if key not in by_json_name:
            errors.append(f"{path}.{key}")
        else:
            inner = model.openapi_types[by_json_name[key]]
            errors += unknown_k8s_fields(item, inner, f"{path}.{key}")
    return errors


def _check_cluster_spec(cluster: dict[str, Any]) -> list[dict[str, Any]]:
    """Check a rayClusterSpec / rayClusterConfig; return its pod templates."""
    assert set(cluster) <= CLUSTER_SPEC_FIELDS
    assert cluster["authOptions"] == {"mode": "token"}
    assert cluster["rayVersion"] == "2.60.0"
    head = cluster["headGroupSpec"]
    assert set(head) <= HEAD_GROUP_FIELDS and "template" in head
    templates = [head["template"]]
    groups = cluster["workerGroupSpecs"]
    assert groups
    for group in groups:
        assert WORKER_GROUP_REQUIRED <= set(group) <= WORKER_GROUP_FIELDS
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        templates.append(group["template"])
    for params in [head["rayStartParams"], *(g["rayStartParams"] for g in groups)]:
        # map[string]string in the CRD: a bare number would be rejected by the API server.
        assert all(isinstance(v, str) for v in params.values()), params
    for template in templates:
        assert unknown_k8s_fields(template, "V1PodTemplateSpec") == []
    return templates


def _env_vars(templates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [env for t in templates for c in t["spec"]["containers"] for env in c.get("env", [])]


def test_pod_field_checker_reports_misspelt_fields():
    template = {"spec": {"containers": [{"name": "x", "envv": [], "resources": {"limts": {}}}]}}
    assert unknown_k8s_fields(template, "V1PodTemplateSpec") == [
        ".spec.containers[0].envv",
        ".spec.containers[0].resources.limts",
    ]


def test_rayjob_runs_the_suite_job_on_a_token_protected_cluster():
    job = _load("rayjob.yaml")
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    assert set(spec) <= RAYJOB_SPEC_FIELDS
    assert "python -m evalcluster.jobs.run_suite" in spec["entrypoint"]
    assert "--store s3://" in spec["entrypoint"]
    assert spec["submissionMode"] in SUBMISSION_MODES
    assert spec["shutdownAfterJobFinishes"] is True
    _check_cluster_spec(spec["rayClusterSpec"])


def test_rayservice_serves_the_http_app_from_a_valid_serve_config():
    service = _load("rayservice.yaml")
    assert service["apiVersion"] == "ray.io/v1" and service["kind"] == "RayService"
    spec = service["spec"]
    assert set(spec) <= RAYSERVICE_SPEC_FIELDS
    assert isinstance(spec["serveConfigV2"], str)  # the CRD wants the YAML as a string
    serve = validate_serve_config(yaml.safe_load(spec["serveConfigV2"]))
    (app,) = serve.applications
    assert app.import_path == "evalcluster.serve.app:build_app"
    assert app.route_prefix == "/"
    assert app.deployments[0].max_ongoing_requests >= 100
    templates = _check_cluster_spec(spec["rayClusterConfig"])
    head_ports = {p["containerPort"] for p in templates[0]["spec"]["containers"][0]["ports"]}
    assert {8000, 8265, 6379} <= head_ports


def test_rayservice_matches_the_standalone_serve_config_except_addresses():
    standalone = yaml.safe_load((INFRA / "serve/config.yaml").read_text())
    embedded = yaml.safe_load(_load("rayservice.yaml")["spec"]["serveConfigV2"])
    a, b = standalone["applications"][0], embedded["applications"][0]
    assert a["import_path"] == b["import_path"]
    assert a["deployments"] == b["deployments"]


@pytest.mark.parametrize("name", ["rayjob.yaml", "rayservice.yaml"])
def test_secrets_come_only_from_secret_key_refs(name):
    doc = _load(name)
    cluster = doc["spec"].get("rayClusterSpec") or doc["spec"]["rayClusterConfig"]
    templates = [cluster["headGroupSpec"]["template"]]
    templates += [g["template"] for g in cluster["workerGroupSpecs"]]
    secret_envs = [e for e in _env_vars(templates) if SECRET_NAME.search(e["name"])]
    assert {e["name"] for e in secret_envs} >= {
        "AWS_SECRET_ACCESS_KEY",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
    }
    for env in secret_envs:
        assert "value" not in env, env["name"]
        assert env["valueFrom"]["secretKeyRef"]["name"] == "evalcluster-secrets"


def test_every_secret_key_the_manifests_read_is_created_in_the_deployment_guide():
    keys = set(re.findall(r"key: ([a-z0-9-]+)", (KUBERAY / "rayjob.yaml").read_text()))
    keys |= set(re.findall(r"key: ([a-z0-9-]+)", (KUBERAY / "rayservice.yaml").read_text()))
    guide = (DOCS / "deployment.md").read_text()
    assert "kubectl -n evalcluster create secret generic evalcluster-secrets" in guide
    for key in keys:
        assert f"--from-literal={key}=" in guide or f"--from-file={key}=" in guide, key
