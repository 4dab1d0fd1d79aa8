"""The `evalcluster` command end to end, as a user runs it (a subprocess, embedded Ray)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from mlflow import MlflowClient

from evalcluster.jobs.mlflow_worker import read_mlflow_status
from evalcluster.store.fs import open_store
from tests.conftest import REPO
from tests.jobs.test_driver import DESIGN_COLUMNS

EVALCLUSTER = [sys.executable, "-m", "evalcluster.cli"]


def evalcluster(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*EVALCLUSTER, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo suite run twice into one store and one MLflow database."""
    work = tmp_path_factory.mktemp("demo")
    db = f"sqlite:///{work}/mlflow.db"
    runs = []
    for run_id in ("demo-a", "demo-b"):
        done = evalcluster(
            "run",
            str(REPO / "examples" / "arithmetic.yaml"),
            "--store",
            str(work / "store"),
            "--tracking-uri",
            db,
            "--run-id",
            run_id,
            "--quiet",
            *(["--no-cache"] if run_id == "demo-b" else []),
            cwd=work,
        )
        runs.append(done)
    # The command does not wait for MLflow: its worker starts after the requests and logs
    # after the exit (evalcluster/jobs/mlflow_worker.py); wait until it says it has.
    store = open_store(str(work / "store"))
    deadline = time.monotonic() + 180
    for run_id in ("demo-a", "demo-b"):
        while (read_mlflow_status(store, run_id) or {}).get("status") in (None, "running"):
            assert time.monotonic() < deadline, read_mlflow_status(store, run_id)
            time.sleep(0.2)
    return work, db, runs


def test_demo_run_exits_0_and_prints_a_summary_table(demo):
    _, _, runs = demo
    for done in runs:
        assert done.returncode == 0, done.stderr[-3000:]
    assert "sim-strong" in runs[0].stdout and "numeric" in runs[0].stdout
    assert "finished" in runs[0].stdout


def test_demo_lake_reads_as_one_hive_table_with_every_column(demo):
    work, _, _ = demo
    runs_dir = work / "store" / "runs"
    table = ds.dataset(str(runs_dir), format="parquet", partitioning="hive").to_table()
    for column in DESIGN_COLUMNS:
        assert column in table.column_names
    per_run = duckdb.sql(
        f"select run_id, count(*) as n, count(distinct (target, sample_id, epoch)) as k "
        f"from read_parquet('{runs_dir}/*/*/*.parquet', hive_partitioning=true) "
        f"group by run_id order by run_id"
    ).fetchall()
    assert per_run == [("demo-a", 600, 600), ("demo-b", 600, 600)]
    # pandas and pyarrow.parquet read partitions as dictionaries: the lake must suit them too
    frame = pd.read_parquet(runs_dir)
    assert len(frame) == 1200 and set(DESIGN_COLUMNS) <= set(frame.columns)
    one_run = pq.read_table(runs_dir / "run_id=demo-a")
    assert one_run.num_rows == 600 and "target" in one_run.column_names


def test_demo_is_logged_to_mlflow_with_parent_and_child_runs(demo):
    _, db, _ = demo
    client = MlflowClient(db)
    experiment = client.get_experiment_by_name("evalcluster/arithmetic")
    assert experiment is not None
    runs = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`evalcluster.run_id` = 'demo-a'"
    )
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parents) == 1 and len(children) == 2
    for child in children:
        assert 0.5 < child.data.metrics["numeric/mean"] <= 1.0
        assert child.info.status == "FINISHED"


def test_runs_results_and_compare_read_the_lake(demo):
    work, _, _ = demo
    store = str(work / "store")
    listed = evalcluster("runs", "--store", store, "--format", "json", cwd=work)
    assert listed.returncode == 0
    assert {r["run_id"] for r in json.loads(listed.stdout)} == {"demo-a", "demo-b"}
    results = evalcluster(
        "results", "demo-a", "--store", store, "--format", "json", "--limit", "5", cwd=work
    )
    rows = json.loads(results.stdout)
    assert len(rows) == 5 and rows[0]["run_id"] == "demo-a"
    compared = evalcluster(
        "compare", "demo-a", "demo-b", "--store", store, "--format", "json", cwd=work
    )
    assert compared.returncode == 0, compared.stderr
    rows = json.loads(compared.stdout)
    strong = [r for r in rows if r["target"] == "sim-strong" and r["scorer"] == "numeric"][0]
    # the simulator is deterministic: the same suite gives the same answers, no difference
    assert strong["n"] == 300 and strong["diff"] == 0 and strong["p_value"] == 1.0
    table = evalcluster("compare", "demo-a", "demo-b", "--store", store, cwd=work)
    assert "p_value" in table.stdout


BAD_SUITES = {  # case: (text to replace, its replacement, what the error line must say)
    "unknown scorer": ("{type: numeric}", "{type: numerci}", "scorers[0].type: unknown scorer"),
    "missing dataset": (
        "path: data/arithmetic.jsonl",
        "path: nope.jsonl",
        "dataset.path: file not found: nope.jsonl",
    ),
    "template variable": ("{question}?", "{questoin}?", "prompt: template variable {questoin}"),
    "bad yaml": ("scorers:", "scorers: [", "invalid YAML"),
}


@pytest.mark.parametrize("case", sorted(BAD_SUITES))
def test_a_bad_suite_exits_2_with_one_line_and_writes_nothing(tmp_path, case):
    old, new, expected = BAD_SUITES[case]
    text = (REPO / "examples" / "arithmetic.yaml").read_text()
    assert old in text
    suite = tmp_path / "bad.yaml"
    suite.write_text(
        text.replace(old, new, 1).replace("path: data/", f"path: {REPO}/examples/data/")
    )
    done = evalcluster(
        "run",
        str(suite),
        "--store",
        str(tmp_path / "store"),
        "--tracking-uri",
        f"sqlite:///{tmp_path}/mlflow.db",
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and expected in done.stderr, done.stderr
    assert not (tmp_path / "store").exists() and not (tmp_path / "mlflow.db").exists()
