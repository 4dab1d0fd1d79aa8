"""docs/deployment.md, storage.md, security.md, operations.md agree with infra/ and the code."""

from __future__ import annotations

import re

import pytest

from evalcluster.actors.metrics import EXPORTED_METRICS

from .promql import DOCS, REPO, base_metric

OURS = ["deployment.md", "storage.md", "security.md", "operations.md"]


@pytest.mark.parametrize("name", OURS)
def test_every_infra_path_a_doc_names_exists(name):
    text = (DOCS / name).read_text()
    paths = set(re.findall(r"\binfra/[\w./-]+[\w]", text))
    for path in paths:
        assert (REPO / path).exists(), f"{name} names {path}"


@pytest.mark.parametrize("name", OURS)
def test_relative_links_point_at_our_docs_or_mlflow_md(name):
    links = re.findall(r"\]\(([\w-]+\.md)(?:#[\w-]+)?\)", (DOCS / name).read_text())
    for link in links:
        # mlflow.md, http-api.md and architecture.md are written by other engineers.
        assert link in {*OURS, "mlflow.md", "http-api.md", "architecture.md"}, link


def test_deployment_guide_links_mlflow_doc_and_uses_the_real_commands():
    text = (DOCS / "deployment.md").read_text()
    assert "(mlflow.md)" in text
    for command in (
        "ray start --head",
        "evalcluster submit",
        "python -m evalcluster.jobs.run_suite",
        "docker compose up -d --build",
        "serve deploy infra/serve/config.yaml",
        "infra/kuberay/rayjob.yaml",
        "infra/kuberay/rayservice.yaml",
    ):
        assert command in text, command


def test_operations_metric_table_names_what_ray_exports():
    text = (DOCS / "operations.md").read_text()
    named = set(re.findall(r"`(ray_evalcluster_\w+)`", text))
    assert {base_metric(n) for n in named} == set(EXPORTED_METRICS)
