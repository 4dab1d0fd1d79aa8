"""infra/prometheus: scrape config and alert rules.

promtool comes with Debian's prometheus package (`apt-get install -y prometheus`); without it
the promtool tests skip and say so.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from evalcluster.actors.metrics import EXPORTED_METRICS

from .promql import INFRA, RAY_PREFIX, alert_rules, base_metric, metric_names, promtool

PROM = INFRA / "prometheus"
needs_promtool = pytest.mark.skipif(
    promtool() is None, reason="promtool not installed (apt-get install -y prometheus)"
)


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_alert_rules_cover_breaker_error_rate_budget_and_stall():
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert set(rules) == {
        "EvalclusterBreakerOpen",
        "EvalclusterProviderErrorRateHigh",
        "EvalclusterRunBudgetHigh",
        "EvalclusterRunStalled",
    }
    assert rules["EvalclusterBreakerOpen"]["for"] == "5m"
    assert "[5m]" in rules["EvalclusterProviderErrorRateHigh"]["expr"]
    assert "> 0.10" in rules["EvalclusterProviderErrorRateHigh"]["expr"]
    assert "> 0.8" in rules["EvalclusterRunBudgetHigh"]["expr"]
    assert "[10m]" in rules["EvalclusterRunStalled"]["expr"]
    for rule in rules.values():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]


def test_alert_rules_use_only_metrics_the_code_exports():
    for rule in alert_rules():
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        for name in names:
            assert name.startswith(RAY_PREFIX), f"{rule['alert']}: {name} lacks Ray's prefix"
            assert base_metric(name) in EXPORTED_METRICS, f"{rule['alert']}: {name}"


def test_scrape_config_reads_rays_discovery_file_and_the_head_without_overlap():
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    files = [f for sd in jobs["ray"]["file_sd_configs"] for f in sd["files"]]
    assert files == ["/tmp/ray/prom_metrics_service_discovery.json"]
    head_targets = [t for sc in jobs["ray-head"]["static_configs"] for t in sc["targets"]]
    assert head_targets == ["ray-head:8080"]
    # The discovery file also lists the head; the ray job must drop exactly that port.
    drops = [r for r in jobs["ray"]["relabel_configs"] if r.get("action") == "drop"]
    assert [(r["source_labels"], r["regex"]) for r in drops] == [(["__address__"], ".+:8080")]
    assert config["rule_files"] == ["alerts.yml"]


@needs_promtool
def test_promtool_accepts_the_alert_rules():
    result = _promtool("check", "rules", "alerts.yml", cwd=PROM)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 rules found" in result.stdout


@needs_promtool
def test_promtool_unit_tests_pin_when_each_alert_fires():
    result = _promtool("test", "rules", "alerts_test.yml", cwd=PROM)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_promtool_unit_tests_catch_a_loosened_threshold(tmp_path):
    # The unit tests must be able to fail: loosen the error-rate threshold and they do.
    shutil.copy(PROM / "alerts_test.yml", tmp_path)
    rules = (PROM / "alerts.yml").read_text().replace(") > 0.10", ") > 0.25")
    (tmp_path / "alerts.yml").write_text(rules)
    result = _promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "EvalclusterProviderErrorRateHigh" in result.stdout + result.stderr


@needs_promtool
def test_promtool_accepts_the_scrape_config():
    result = _promtool("check", "config", "prometheus.yml", cwd=PROM)
    assert result.returncode == 0, result.stdout + result.stderr
