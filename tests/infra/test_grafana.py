"""infra/grafana: the dashboard and its provisioning."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from evalcluster.actors.metrics import EXPORTED_METRICS

from .promql import (
    INFRA,
    RAY_PREFIX,
    base_metric,
    dashboard_exprs,
    grafana_to_promql,
    metric_names,
    promtool,
)

GRAFANA = INFRA / "grafana"


def _dashboard() -> dict:
    return json.loads((GRAFANA / "dashboards/evalcluster.json").read_text())


def test_dashboard_uses_only_metrics_the_code_exports():
    exprs = dashboard_exprs()
    assert exprs
    for expr in exprs:
        names = metric_names(expr)
        assert names, expr
        for name in names:
            assert name.startswith(RAY_PREFIX), f"{name} lacks Ray's prefix: {expr}"
            assert base_metric(name) in EXPORTED_METRICS, expr


def test_dashboard_shows_every_exported_metric():
    used = {base_metric(n) for expr in dashboard_exprs() for n in metric_names(expr)}
    assert used == set(EXPORTED_METRICS)


def test_dashboard_has_the_panels_design_md_asks_for():
    exprs = "\n".join(dashboard_exprs())
    assert "sum by (provider, outcome)" in exprs  # requests by outcome
    assert "histogram_quantile(0.5," in exprs and "histogram_quantile(0.95," in exprs
    assert "sum by (run_id) (rate(ray_evalcluster_samples_total" in exprs  # samples/s per run
    titles = {panel["title"] for panel in _dashboard()["panels"]}
    assert {"Circuit breaker state", "Budget used by run", "Tokens per second"} <= titles


def test_panels_are_laid_out_without_overlap_and_with_unique_ids():
    panels = _dashboard()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, p["title"]
                cells.add((x, y))


def test_dashboard_datasource_is_the_provisioned_one():
    provisioned = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    uids = {ds["uid"] for ds in provisioned["datasources"]}
    dashboard = _dashboard()
    used = {p["datasource"]["uid"] for p in dashboard["panels"]}
    used |= {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    used |= {v["datasource"]["uid"] for v in dashboard["templating"]["list"]}
    assert used == uids


def test_dashboard_provider_path_is_where_compose_mounts_the_dashboards():
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/evalcluster.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    compose = yaml.safe_load((INFRA / "compose/docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"../grafana/dashboards:{path}:ro" in mounts


@pytest.mark.skipif(
    promtool() is None, reason="promtool not installed (apt-get install prometheus)"
)
def test_every_dashboard_query_is_valid_promql(tmp_path):
    # promtool parses the expressions of recording rules: a syntax error in any panel fails.
    rules = [
        {"record": f"dashboard:panel_{i}", "expr": grafana_to_promql(expr)}
        for i, expr in enumerate(dashboard_exprs())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout
