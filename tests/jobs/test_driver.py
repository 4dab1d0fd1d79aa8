"""Whole runs in-process against the simulator over real HTTP, on each executor: a real local
Ray, and this process without Ray (the `executor` fixture, tests/jobs/conftest.py)."""

from __future__ import annotations

import json

import pyarrow.dataset as ds
import pytest

from evalcluster.jobs.driver import run_suite
from evalcluster.jobs.options import RunOptions
from evalcluster.jobs.prepare import prepare_suite
from evalcluster.simulator import SimulatorConfig, SimulatorThread
from evalcluster.store.fs import open_store
from evalcluster.store.lake import read_results
from evalcluster.store.manifest import read_manifest
from tests.conftest import openai_provider, write_suite

DESIGN_COLUMNS = [
    "run_id",
    "suite",
    "suite_version",
    "target",
    "provider",
    "model",
    "sample_id",
    "epoch",
    "prompt",
    "reference",
    "output",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
    "attempts",
    "cache_hit",
    "error_kind",
    "error",
    "request_hash",
    "finished_at",
]


@pytest.fixture
def sim():
    with SimulatorThread(SimulatorConfig(accuracy=1.0)) as sim:
        yield sim


def options(tmp_path, executor: str, **kw) -> RunOptions:
    return RunOptions(store=str(tmp_path / "store"), tracking_uri=None, executor=executor, **kw)


def test_run_writes_one_row_per_sample_target_epoch_with_every_column(executor, tmp_path, sim):
    path = write_suite(
        tmp_path,
        samples=20,
        epochs=2,
        providers={"p": openai_provider(sim.url)},
        targets=[
            {"name": "a", "provider": "p", "model": "m1", "params": {"temperature": 0}},
            {"name": "b", "provider": "p", "model": "m2", "params": {"temperature": 0.7}},
        ],
    )
    result = run_suite(prepare_suite(path), options(tmp_path, executor, run_id="r1"))
    assert result.status == "finished"
    table = ds.dataset(
        str(tmp_path / "store" / "runs"), format="parquet", partitioning="hive"
    ).to_table()
    for column in [*DESIGN_COLUMNS, "score_numeric", "score_exact"]:
        assert column in table.column_names
    keys = list(
        zip(
            table["target"].to_pylist(),
            table["sample_id"].to_pylist(),
            table["epoch"].to_pylist(),
            strict=True,
        )
    )
    assert len(keys) == len(set(keys)) == 2 * 20 * 2
    assert set(table["score_numeric"].to_pylist()) == {1.0}  # accuracy 1.0: all correct
    assert all(x > 0 for x in table["cost_usd"].to_pylist())
    summary = json.loads((tmp_path / "store" / "runs" / "run_id=r1" / "_summary.json").read_text())
    assert summary["targets"]["a"]["scorers"]["numeric"]["mean"] == 1.0
    assert summary["targets"]["a"]["samples"] == 20
    assert set(summary["targets"]["a"]["scorers"]["numeric"]["groups"]["op"]) == {"add", "plus"}
    manifest = read_manifest(open_store(str(tmp_path / "store")), "r1")
    assert manifest.status == "finished"
    assert sum(len(s) for s in manifest.shards.values()) == 2 * 3  # 20 samples / 8 per shard


def test_second_run_of_same_suite_makes_no_provider_calls(executor, tmp_path, sim):
    path = write_suite(
        tmp_path,
        samples=30,
        providers={"p": openai_provider(sim.url)},
        targets=[{"name": "a", "provider": "p", "model": "m1", "params": {"temperature": 0}}],
    )
    suite = prepare_suite(path)
    first = run_suite(suite, options(tmp_path, executor, run_id="first"))
    calls_after_first = sim.stats()["requests_total"]
    assert first.status == "finished" and calls_after_first == 30
    second = run_suite(suite, options(tmp_path, executor, run_id="second"))
    assert second.status == "finished"
    assert sim.stats()["requests_total"] == calls_after_first
    rows = read_results(open_store(str(tmp_path / "store")), "second").to_pylist()
    assert len(rows) == 30 and all(r["cache_hit"] for r in rows)
    assert all(r["attempts"] == 0 and r["cost_usd"] == 0 for r in rows)
    third = run_suite(suite, options(tmp_path, executor, run_id="third", no_cache=True))
    assert third.status == "finished"
    assert sim.stats()["requests_total"] == calls_after_first + 30


def test_failed_calls_are_rows_with_error_kind_and_no_score(executor, tmp_path, sim):
    provider = openai_provider(sim.url, headers={"x-sim-force": "bad_request"})
    path = write_suite(
        tmp_path,
        samples=5,
        providers={"p": provider},
        targets=[{"name": "a", "provider": "p", "model": "m"}],
    )
    result = run_suite(prepare_suite(path), options(tmp_path, executor, run_id="bad"))
    rows = read_results(open_store(str(tmp_path / "store")), "bad").to_pylist()
    assert len(rows) == 5
    assert {r["error_kind"] for r in rows} == {"bad_request"}
    assert all(r["score_numeric"] is None and r["attempts"] == 1 for r in rows)
    assert result.summary["targets"]["a"]["errors"] == 5
    assert result.summary["targets"]["a"]["scorers"]["numeric"]["n"] == 0


def test_unreachable_mlflow_loses_no_results_and_says_logging_failed(executor, tmp_path, sim):
    path = write_suite(
        tmp_path,
        samples=6,
        providers={"p": openai_provider(sim.url)},
        targets=[{"name": "a", "provider": "p", "model": "m"}],
    )
    opts = RunOptions(
        store=str(tmp_path / "store"),
        tracking_uri="http://127.0.0.1:9",
        run_id="no-mlflow",
        executor=executor,
    )
    result = run_suite(prepare_suite(path), opts)
    assert result.status == "finished"
    assert result.mlflow_error and "MLflow logging failed" in result.mlflow_error
    assert read_results(open_store(str(tmp_path / "store")), "no-mlflow").num_rows == 6
