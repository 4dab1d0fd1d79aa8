"""The dashboard and alert queries against what Ray 2.60 really exports.

A local Ray records every evalcluster metric from an actor; the test reads Ray's Prometheus
endpoint, then runs a real Prometheus (Debian's `prometheus` package) with
infra/prometheus/prometheus.yml pointed at it and evaluates every dashboard query and alert.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
import yaml

from evalcluster.actors import metrics

from .promql import INFRA, alert_rules, dashboard_exprs, grafana_to_promql, metric_names

# Ray pushes metrics to its agent every report interval (10 s by default); 1 s keeps this fast.
_RAY_CONFIG = {"metrics_report_interval_ms": 1000}


@ray.remote(num_cpus=0)
class _Emitter:
    """Records one of every evalcluster metric, as the provider actors and the run registry do."""

    def emit(self) -> None:
        metrics.requests_total().inc(8, tags={"provider": "sim", "outcome": "ok"})
        metrics.requests_total().inc(2, tags={"provider": "sim", "outcome": "rate_limited"})
        metrics.tokens_total().inc(100, tags={"provider": "sim", "direction": "input"})
        metrics.tokens_total().inc(10, tags={"provider": "sim", "direction": "output"})
        metrics.cost_usd_total().inc(0.01, tags={"provider": "sim"})
        for latency in (0.03, 0.2, 0.7):
            metrics.request_latency_seconds().observe(latency, tags={"provider": "sim"})
        metrics.breaker_state().set(2, tags={"provider": "sim"})
        metrics.samples_total().inc(5, tags={"run_id": "r1", "status": "ok"})
        metrics.run_budget_used_ratio().set(0.9, tags={"run_id": "r1"})
        gateway = {"tenant": "team-a", "model": "sim/sim-1"}
        metrics.gateway_requests_total().inc(3, tags={**gateway, "outcome": "ok"})
        metrics.gateway_tokens_total().inc(30, tags={**gateway, "direction": "input"})
        metrics.gateway_tokens_total().inc(6, tags={**gateway, "direction": "output"})
        metrics.gateway_cost_usd_total().inc(0.001, tags=gateway)
        for state, value in (("queued", 1), ("in_progress", 2), ("requests_in_progress", 40)):
            metrics.batches().set(value, tags={"provider": "sim", "state": state})


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def _wait_for(check, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def ray_metrics() -> Iterator[tuple[str, ray.actor.ActorHandle]]:
    """(metrics endpoint host:port, emitter actor) of a fresh local Ray."""
    ray.init(
        address="local",
        num_cpus=1,
        include_dashboard=False,
        _system_config=_RAY_CONFIG,
        log_to_driver=False,
    )
    try:
        (node,) = [n for n in ray.nodes() if n["Alive"]]
        target = f"127.0.0.1:{node['MetricsExportPort']}"
        emitter = _Emitter.remote()
        ray.get(emitter.emit.remote())
        yield target, emitter
    finally:
        ray.shutdown()


def _exposition(target: str) -> str:
    body = _get(f"http://{target}/metrics")
    return body if "ray_evalcluster_run_budget_used_ratio{" in body else ""


def test_every_queried_series_name_is_in_rays_exposition(ray_metrics):
    target, _ = ray_metrics
    body = _wait_for(lambda: _exposition(target), 30, "evalcluster metrics on Ray's endpoint")
    exported = {
        line.split("{", 1)[0].split(" ", 1)[0]
        for line in body.splitlines()
        if line.startswith("ray_evalcluster_")
    }
    queried = {
        n
        for e in [*dashboard_exprs(), *(r["expr"] for r in alert_rules())]
        for n in metric_names(e)
    }
    assert queried <= exported, queried - exported
    # Ray keeps a single _total on counters whose name already ends in _total.
    assert not any(name.endswith("_total_total") for name in exported)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def prometheus(ray_metrics, tmp_path_factory) -> Iterator[str]:
    """Base URL of a real Prometheus running infra/prometheus with the head at Ray's port."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus not installed (apt-get install -y prometheus)")
    target, _ = ray_metrics
    workdir: Path = tmp_path_factory.mktemp("prometheus")
    config = yaml.safe_load((INFRA / "prometheus/prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            static["targets"] = [target]
        for sd in job.get("file_sd_configs", []):
            sd["files"] = [str(workdir / "discovery.json")]
    (workdir / "discovery.json").write_text("[]")
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    shutil.copy(INFRA / "prometheus/alerts.yml", workdir)
    port = _free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "prometheus.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: _ready(url), 30, "Prometheus to start")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _ready(url: str) -> bool:
    try:
        return "Ready" in _get(f"{url}/-/ready")
    except OSError:
        return False


def _query(url: str, expr: str) -> list[dict]:
    body = json.loads(_get(f"{url}/api/v1/query?query={urllib.parse.quote(expr)}"))
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_every_dashboard_query_returns_data_from_ray(ray_metrics, prometheus):
    _, emitter = ray_metrics

    def all_answer() -> bool:
        ray.get(emitter.emit.remote())  # keep counters moving so rate() has two samples
        return all(_query(prometheus, grafana_to_promql(e)) for e in dashboard_exprs())

    _wait_for(all_answer, 60, "every dashboard query to return series")
    p95 = _query(
        prometheus,
        grafana_to_promql([e for e in dashboard_exprs() if "histogram_quantile(0.95" in e][0]),
    )
    assert 0.25 < float(p95[0]["value"][1]) <= 1.0  # our samples: 30 ms, 200 ms, 700 ms


def test_alerts_fire_on_ray_series_and_rules_are_healthy(ray_metrics, prometheus):
    # The emitter's data: 20% errors, budget at 90%: both alerts fire at once (no `for`
    # on the budget one; the error-rate one goes pending first).
    def states() -> dict[str, str]:
        body = json.loads(_get(f"{prometheus}/api/v1/rules"))
        rules = [r for g in body["data"]["groups"] for r in g["rules"]]
        assert all(r["health"] == "ok" for r in rules), rules
        return {r["name"]: r["state"] for r in rules}

    def fired() -> dict[str, str] | None:
        ray.get(ray_metrics[1].emit.remote())
        current = states()
        done = current["EvalclusterRunBudgetHigh"] == "firing" and current[
            "EvalclusterProviderErrorRateHigh"
        ] in ("pending", "firing")
        return current if done else None

    current = _wait_for(fired, 60, "the budget and error-rate alerts")
    assert current["EvalclusterBreakerOpen"] == "pending"  # needs 5 minutes
    assert current["EvalclusterRunStalled"] == "inactive"  # live for less than 10 minutes
