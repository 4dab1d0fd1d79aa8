"""A whole suite with two targets (one graded by a judge model) run against a real
`mlflow server`, read back with MlflowClient."""

from __future__ import annotations

import json

from mlflow import MlflowClient

from evalcluster.jobs.driver import run_suite
from evalcluster.jobs.options import RunOptions
from evalcluster.jobs.prepare import prepare_suite
from evalcluster.simulator import SimulatorConfig, SimulatorThread
from tests.conftest import openai_provider, write_suite


def test_suite_with_two_targets_and_a_judge_is_logged_to_a_real_server(
    tmp_path, mlflow_server, local_ray
):
    with SimulatorThread(SimulatorConfig(accuracy=0.5, seed=3)) as sim:
        path = write_suite(
            tmp_path,
            samples=16,
            name="graded",
            providers={"p": openai_provider(sim.url)},
            targets=[
                {"name": "good", "provider": "p", "model": "m-good", "params": {"temperature": 0}},
                {
                    "name": "other",
                    "provider": "p",
                    "model": "m-other",
                    "params": {"temperature": 0},
                },
            ],
            judges=[
                {"name": "judge", "provider": "p", "model": "m-judge", "params": {"temperature": 0}}
            ],
            scorers=[{"type": "numeric"}, {"type": "model_graded", "judge": "judge"}],
        )
        result = run_suite(
            prepare_suite(path),
            RunOptions(
                store=str(tmp_path / "store"), tracking_uri=mlflow_server.url, run_id="graded-1"
            ),
        )
    assert result.status == "finished" and result.mlflow_error is None
    client = MlflowClient(mlflow_server.url)
    experiment = client.get_experiment_by_name("evalcluster/graded")
    runs = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`evalcluster.run_id` = 'graded-1'"
    )
    parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags][0]
    children = {
        r.data.tags["evalcluster.target"]: r
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    }
    assert set(children) == {"good", "other"}
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["evalcluster.results_uri"].endswith("runs/run_id=graded-1")
    for name, child in children.items():
        assert child.info.status == "FINISHED"
        assert child.data.params["model"] == f"m-{name}"
        summary = result.summary["targets"][name]
        # the judge agrees with the numeric scorer: it grades the same final number
        assert child.data.metrics["model_graded/mean"] == summary["scorers"]["numeric"]["mean"]
        assert child.data.metrics["numeric/mean"] == summary["scorers"]["numeric"]["mean"]
        assert child.data.metrics["cost_usd"] > 0
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"summary.json", "suite.yaml"} <= artifacts
    summary = json.loads(
        (tmp_path / "store" / "runs" / "run_id=graded-1" / "_summary.json").read_text()
    )
    assert summary["targets"]["good"]["judge_input_tokens"] > 0
