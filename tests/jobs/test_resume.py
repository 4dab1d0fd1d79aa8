"""A driver killed mid-run (SIGKILL, like a lost machine) is resumed with the same run id, on
each executor (`--executor ray`, `--executor local`)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from evalcluster.jobs.mlflow_worker import read_mlflow_status
from evalcluster.simulator import SimulatorConfig, SimulatorThread
from evalcluster.store.fs import open_store
from evalcluster.store.lake import list_shards, read_results
from evalcluster.store.manifest import read_manifest
from tests.conftest import openai_provider, write_suite
from tests.jobs.cli_process import kill_group, start_cli_run, wait_while_running

SAMPLES, SHARD = 96, 8


def start_run(suite: Path, work: Path, run_id: str, executor: str) -> subprocess.Popen:
    tracking = f"sqlite:///{work}/mlflow.db"
    return start_cli_run(suite, work, run_id, "--executor", executor, tracking_uri=tracking)


def settled_count(sim) -> int:
    """Requests the simulator has seen once the killed run's last in-flight ones have landed."""
    previous = -1
    while True:
        stats = sim.stats()
        if stats["in_flight"] == 0 and stats["requests_total"] == previous:
            return previous
        previous = stats["requests_total"]
        time.sleep(1.0)


@pytest.fixture
def slow_sim():
    with SimulatorThread(SimulatorConfig(latency_ms=150)) as sim:
        yield sim


def test_killed_driver_resumes_without_repeating_committed_shards(tmp_path, slow_sim, cli_executor):
    suite = write_suite(
        tmp_path,
        samples=SAMPLES,
        shard_size=SHARD,
        providers={"p": openai_provider(slow_sim.url, max_concurrency=4)},
        targets=[{"name": "a", "provider": "p", "model": "m", "params": {"temperature": 0}}],
    )
    store = open_store(str(tmp_path / "store"))
    first = start_run(suite, tmp_path, "resumed", cli_executor)
    try:
        wait_while_running(
            first,
            lambda: (
                store.exists("runs/run_id=resumed/_manifest.json")
                and len(list_shards(store, "resumed")) >= 3
            ),
            timeout_s=180,
            what="three committed shards",
            every_s=0.2,
        )
    finally:
        kill_group(first)
    calls_before = settled_count(slow_sim)  # the dying run's workers may still commit
    committed_rows = read_results(store, "resumed").num_rows
    assert 0 < committed_rows < SAMPLES
    killed = read_manifest(store, "resumed")
    assert killed.status == "running"  # the driver died mid-run
    # The command starts MLflow's worker once the requests are done: killed before then, the
    # run has no MLflow run, and its manifest and the absent _mlflow.json say so.
    assert killed.mlflow_logging == "after_requests"
    assert killed.mlflow_run_id is None
    assert read_mlflow_status(store, "resumed") is None

    second = start_run(suite, tmp_path, "resumed", cli_executor)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err[-3000:]

    rows = read_results(store, "resumed").to_pylist()
    assert sorted(r["sample_id"] for r in rows) == sorted({r["sample_id"] for r in rows})
    assert len(rows) == SAMPLES
    # committed shards were not evaluated again: only the rest reached the provider
    assert slow_sim.stats()["requests_total"] - calls_before == SAMPLES - committed_rows
    manifest = read_manifest(store, "resumed")
    assert manifest.status == "finished"

    # the command does not wait for MLflow: its worker process finishes the run after the exit
    deadline = time.monotonic() + 120
    while (read_mlflow_status(store, "resumed") or {}).get("status") in (None, "running"):
        assert time.monotonic() < deadline, read_mlflow_status(store, "resumed")
        time.sleep(0.2)
    assert read_mlflow_status(store, "resumed")["status"] == "logged"
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("evalcluster/t-suite")
    parents = [
        r
        for r in client.search_runs(
            [experiment.experiment_id], filter_string="tags.`evalcluster.run_id` = 'resumed'"
        )
        if "mlflow.parentRunId" not in r.data.tags
    ]
    # the resumed run logs the whole run: one FINISHED parent with every sample
    assert [r.info.status for r in parents] == ["FINISHED"]
    assert parents[0].info.run_id == read_mlflow_status(store, "resumed")["mlflow_run_id"]
    assert parents[0].data.params["sample_count"] == str(SAMPLES)
