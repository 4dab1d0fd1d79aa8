"""MlflowTracker against a real `mlflow server`, read back with MlflowClient."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mlflow import MlflowClient
from tracking_support import SUITE_TEXT, LoggedEvaluation, MlflowServer, make_rows, make_targets

from evalcluster.errors import TrackingError
from evalcluster.tracking import MlflowTracker, TargetResult


@pytest.fixture(scope="module")
def tracker(mlflow_server: MlflowServer) -> MlflowTracker:
    return MlflowTracker(mlflow_server.url)


@pytest.fixture(scope="module")
def client(mlflow_server: MlflowServer) -> MlflowClient:
    return MlflowClient(mlflow_server.url)


def _children(client: MlflowClient, parent_id: str) -> dict[str, object]:
    parent = client.get_run(parent_id)
    runs = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    return {run.info.run_name: run for run in runs}


def _start(tracker: MlflowTracker, suite: str, run_id: str, **extra) -> str:
    return tracker.start_evaluation(
        suite=suite,
        suite_version="v1",
        run_id=run_id,
        results_uri=f"/tmp/evalstore/runs/run_id={run_id}",
        suite_file_text=SUITE_TEXT,
        seed=0,
        sample_count=2,
        **extra,
    )


def _target(name: str) -> TargetResult:
    return TargetResult(name, "sim", "sim-1", {"temperature": 0}, 2, {"exact/mean": 1.0})


def test_evaluation_logs_experiment_parent_and_one_child_per_target(
    client: MlflowClient, logged_evaluation: LoggedEvaluation
):
    parent = client.get_run(logged_evaluation.parent_run_id)
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.name == "evalcluster/arithmetic"
    assert parent.info.run_name == logged_evaluation.run_id
    assert parent.info.status == "FINISHED"
    children = _children(client, parent.info.run_id)
    assert sorted(children) == ["sim-anthropic", "sim-openai"]
    assert all(child.info.status == "FINISHED" for child in children.values())


def test_parent_run_has_params_tags_totals_and_per_target_metric_copies(
    client: MlflowClient, logged_evaluation: LoggedEvaluation
):
    parent = client.get_run(logged_evaluation.parent_run_id)
    assert parent.data.params == {"suite_version": "a1b2c3d4", "seed": "7", "sample_count": "5"}
    tags = parent.data.tags
    assert tags["evalcluster.run_id"] == logged_evaluation.run_id
    assert tags["evalcluster.results_uri"] == logged_evaluation.results_uri
    assert tags["evalcluster.suite"] == "arithmetic"
    assert tags["evalcluster.suite_version"] == "a1b2c3d4"
    metrics = parent.data.metrics
    assert metrics["sim-openai/exact/mean"] == pytest.approx(0.6)
    assert metrics["sim-anthropic/numeric/stderr"] == pytest.approx(0.2887)
    assert metrics["sim-anthropic/latency_ms/p95"] == pytest.approx(44.0)
    assert metrics["cost_usd"] == pytest.approx(0.0009)
    assert metrics["tokens/input"] == 220
    assert metrics["tokens/output"] == 18
    assert metrics["errors"] == 1


def test_child_runs_have_target_params_metrics_and_tags(
    client: MlflowClient, logged_evaluation: LoggedEvaluation
):
    child = _children(client, logged_evaluation.parent_run_id)["sim-openai"]
    assert child.data.params == {
        "suite_version": "a1b2c3d4",
        "model": "sim-1",
        "provider": "sim-openai",
        "sample_count": "5",
        "seed": "7",
        "params.temperature": "0",
        "params.max_tokens": "16",
        "params.stop": '["\\n"]',
    }
    expected_metrics = make_targets()[0].metrics
    assert child.data.metrics == pytest.approx({k: float(v) for k, v in expected_metrics.items()})
    tags = child.data.tags
    assert tags["mlflow.parentRunId"] == logged_evaluation.parent_run_id
    assert tags["evalcluster.target"] == "sim-openai"
    assert tags["evalcluster.run_id"] == logged_evaluation.run_id
    assert tags["evalcluster.results_uri"] == logged_evaluation.results_uri
    assert tags["evalcluster.suite"] == "arithmetic"
    assert tags["evalcluster.suite_version"] == "a1b2c3d4"


def _group(n: int, mean: float, low: float | None = None, high: float | None = None) -> dict:
    return {"n": n, "mean": mean, "stderr": 0.1, "ci_low": low, "ci_high": high, "method": "t"}


def test_group_by_breakdowns_are_child_run_metrics_capped_and_sanitised(
    tracker: MlflowTracker, client: MlflowClient, monkeypatch: pytest.MonkeyPatch
):
    import evalcluster.tracking.tracker as tracker_module

    monkeypatch.setattr(tracker_module, "MAX_LOGGED_GROUPS", 2, raising=False)
    topic = {"algebra": _group(12, 0.75, 0.5, 0.9), "geo/metry": _group(6, 0.5, 0.2, 0.8)}
    level = {"easy": _group(10, 0.9, 0.7, 1.0), "hard": _group(5, 0.2), "..": _group(1, 1.0)}
    summary = {
        "targets": {
            "t1": {
                "scorers": {
                    "exact": {"mean": 0.7, "groups": {"topic": topic, "level": level}},
                    "numeric": {"mean": 0.6, "groups": {"topic": {"algebra": _group(11, 0.8)}}},
                }
            }
        }
    }
    parent = _start(tracker, "groups-suite", "run-groups")
    tracker.finish_evaluation(parent, status="FINISHED", summary=summary, targets=[_target("t1")])

    child = _children(client, parent)["t1"]
    metrics = child.data.metrics
    assert metrics["exact/mean"] == 1.0  # the target's own metrics are untouched
    assert metrics["exact/by_topic/algebra/mean"] == pytest.approx(0.75)
    assert metrics["exact/by_topic/algebra/ci_low"] == pytest.approx(0.5)
    assert metrics["exact/by_topic/algebra/ci_high"] == pytest.approx(0.9)
    assert metrics["exact/by_topic/algebra/n"] == 12
    assert metrics["numeric/by_topic/algebra/mean"] == pytest.approx(0.8)
    assert metrics["exact/by_level/easy/mean"] == pytest.approx(0.9)
    assert metrics["exact/by_level/hard/mean"] == pytest.approx(0.2)
    assert "exact/by_level/hard/ci_low" not in metrics  # no interval: nothing to log
    # "/" inside a value becomes "_" plus a hash of the value, so values cannot clash
    geo = [name for name in metrics if name.startswith("exact/by_topic/geo_metry_")]
    assert sorted(name.rsplit("/", 1)[1] for name in geo) == ["ci_high", "ci_low", "mean", "n"]
    # level has three groups: the two largest are logged, and the run says so
    assert not any(name.startswith("exact/by_level/__") for name in metrics)
    capped = child.data.tags["evalcluster.groups_capped"]
    assert "level: the 2 largest of 3 groups logged" in capped
    assert "topic" not in capped
    assert not any("/by_" in name for name in client.get_run(parent).data.metrics)


def test_secret_looking_params_are_never_logged(
    client: MlflowClient, logged_evaluation: LoggedEvaluation
):
    child = _children(client, logged_evaluation.parent_run_id)["sim-anthropic"]
    assert "params.api_key" not in child.data.params
    assert child.data.params["params.max_tokens"] == "16"
    everything = json.dumps([child.data.params, child.data.tags])
    assert "sk-ant-DO-NOT-LOG" not in everything


def test_parent_artifacts_are_summary_and_suite_file(
    client: MlflowClient, logged_evaluation: LoggedEvaluation, tmp_path: Path
):
    parent_id = logged_evaluation.parent_run_id
    names = {a.path for a in client.list_artifacts(parent_id)}
    assert {"summary.json", "suite.yaml"} <= names
    summary = json.loads(
        Path(client.download_artifacts(parent_id, "summary.json", tmp_path)).read_text()
    )
    assert summary["run_id"] == logged_evaluation.run_id
    suite = Path(client.download_artifacts(parent_id, "suite.yaml", tmp_path)).read_text()
    assert suite == SUITE_TEXT


def test_results_uri_is_logged_as_evaluation_dataset_input(
    client: MlflowClient, logged_evaluation: LoggedEvaluation
):
    for run_id in [logged_evaluation.parent_run_id] + [
        c.info.run_id for c in _children(client, logged_evaluation.parent_run_id).values()
    ]:
        inputs = client.get_run(run_id).inputs.dataset_inputs
        assert len(inputs) == 1
        dataset = inputs[0].dataset
        assert json.loads(dataset.source) == {"uri": logged_evaluation.results_uri}
        assert dataset.name == f"arithmetic/{logged_evaluation.run_id}"
        assert {t.key: t.value for t in inputs[0].tags}["mlflow.data.context"] == "evaluation"


def test_samples_become_traces_with_assessments_capped_per_target(
    client: MlflowClient, logged_evaluation: LoggedEvaluation
):
    children = _children(client, logged_evaluation.parent_run_id)
    child = children["sim-openai"]
    traces = client.search_traces(
        locations=[child.info.experiment_id], run_id=child.info.run_id, max_results=100
    )
    assert len(traces) == logged_evaluation.traced_per_target
    by_sample = {t.info.tags["sample_id"]: t for t in traces}
    assert sorted(by_sample) == ["s000", "s001", "s002"]
    trace = by_sample["s001"]
    assert trace.info.tags["target"] == "sim-openai"
    assert trace.info.tags["epoch"] == "0"
    assert trace.info.state.value == "OK"
    span = trace.data.spans[0]
    assert span.inputs == {"prompt": "What is 18+25? Answer with the number only."}
    assert span.outputs == "7"
    assessments = {a.name: a for a in trace.info.assessments}
    assert assessments["expected_response"].value == "43"
    assert assessments["exact"].value == 0.0
    assert assessments["numeric"].value == 0.0
    assert assessments["exact"].source.source_id == "evalcluster.scorer.exact"


def test_failed_sample_trace_has_error_state_and_scorer_errors_instead_of_scores(
    client: MlflowClient, logged_evaluation: LoggedEvaluation
):
    child = _children(client, logged_evaluation.parent_run_id)["sim-anthropic"]
    traces = client.search_traces(
        locations=[child.info.experiment_id],
        run_id=child.info.run_id,
        filter_string="tag.sample_id = 's001'",
    )
    assert len(traces) == 1
    trace = traces[0]
    assert trace.info.state.value == "ERROR"
    assert trace.info.tags["error_kind"] == "rate_limited"
    exact = next(a for a in trace.info.assessments if a.name == "exact")
    assert exact.value is None
    assert exact.error.error_code == "rate_limited"
    assert "HTTP 429" in exact.error.error_message


def test_samples_table_artifact_lists_traced_rows(
    client: MlflowClient, logged_evaluation: LoggedEvaluation, tmp_path: Path
):
    child = _children(client, logged_evaluation.parent_run_id)["sim-openai"]
    path = client.download_artifacts(child.info.run_id, "samples.json", tmp_path)
    table = json.loads(Path(path).read_text())
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    assert [r["sample_id"] for r in rows] == ["s000", "s001", "s002"]
    assert all(r["trace_id"].startswith("tr-") for r in rows)
    assert rows[1]["score_exact"] == 0.0


@pytest.mark.parametrize("status", ["FAILED", "KILLED"])
def test_run_status_mirrors_the_evaluation(
    tracker: MlflowTracker, client: MlflowClient, status: str
):
    parent = _start(tracker, "status-suite", f"run-{status.lower()}")
    tracker.finish_evaluation(
        parent,
        status=status,
        summary={"finished_at": datetime(2026, 1, 1, tzinfo=UTC)},  # not plain JSON
        targets=[_target("t1")],
        samples=make_rows("t1", 2),
    )
    assert client.get_run(parent).info.status == status
    assert _children(client, parent)["t1"].info.status == status


def test_failed_trace_logging_still_closes_the_runs_then_raises_tracking_error(
    tracker: MlflowTracker, client: MlflowClient
):
    parent = _start(tracker, "partial-suite", "run-partial")
    rows = make_rows("t1", 2)
    rows[1]["latency_ms"] = "not a number"
    with pytest.raises(TrackingError, match="per-sample traces"):
        tracker.finish_evaluation(
            parent, status="FINISHED", summary={}, targets=[_target("t1")], samples=rows
        )
    assert client.get_run(parent).info.status == "FINISHED"
    child = _children(client, parent)["t1"]
    assert child.info.status == "FINISHED"
    assert child.data.metrics == {"exact/mean": 1.0}


def test_unknown_status_is_rejected_before_anything_is_logged(tracker: MlflowTracker):
    with pytest.raises(ValueError, match="FINISHED"):
        tracker.finish_evaluation("whatever", status="DONE", summary={}, targets=[])


def test_mark_killed_closes_a_running_parent_and_find_running_stops_listing_it(
    tracker: MlflowTracker, client: MlflowClient
):
    parent = _start(tracker, "killed-suite", "run-killed-driver")
    assert client.get_run(parent).info.status == "RUNNING"
    assert tracker.find_running("run-killed-driver") == [parent]
    tracker.mark_killed(parent)
    assert client.get_run(parent).info.status == "KILLED"
    assert tracker.find_running("run-killed-driver") == []
    tracker.mark_killed(parent)  # idempotent
    assert client.get_run(parent).info.status == "KILLED"


def test_mark_killed_also_closes_children_left_running(
    tracker: MlflowTracker, client: MlflowClient
):
    parent = _start(tracker, "killed-suite", "run-killed-children")
    experiment_id = client.get_run(parent).info.experiment_id
    child = client.create_run(experiment_id, tags={"mlflow.parentRunId": parent})
    tracker.mark_killed(parent)
    assert client.get_run(child.info.run_id).info.status == "KILLED"
    assert client.get_run(parent).info.status == "KILLED"


def test_find_running_ignores_finished_parents_and_other_run_ids(tracker: MlflowTracker):
    finished = _start(tracker, "find-suite", "run-find-a")
    tracker.finish_evaluation(finished, status="FINISHED", summary={}, targets=[])
    running = _start(tracker, "find-suite-2", "run-find-a")
    _start(tracker, "find-suite", "run-find-b")
    assert tracker.find_running("run-find-a") == [running]


def test_resumed_run_links_the_earlier_parent_runs(tracker: MlflowTracker, client: MlflowClient):
    first = _start(tracker, "resume-suite", "run-resume")
    tracker.mark_killed(first)
    second = _start(tracker, "resume-suite", "run-resume", resumed_from=[first])
    assert client.get_run(second).data.tags["evalcluster.resumed_from"] == first


def test_trackers_on_two_stores_in_parallel_threads_do_not_interfere(
    mlflow_server: MlflowServer, tmp_path: Path
):
    sqlite_uri = f"sqlite:///{tmp_path}/mlflow.db"
    results: dict[str, str] = {}
    errors: list[BaseException] = []

    def evaluate(uri: str, run_id: str) -> None:
        try:
            tracker = MlflowTracker(uri)
            parent = _start(tracker, "threads-suite", run_id)
            tracker.finish_evaluation(
                parent,
                status="FINISHED",
                summary={"run_id": run_id},
                targets=[_target("t1")],
                samples=make_rows("t1", 4),
                max_traced_samples=2,
            )
            results[uri] = parent
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [
        threading.Thread(target=evaluate, args=(mlflow_server.url, "run-thread-server")),
        threading.Thread(target=evaluate, args=(sqlite_uri, "run-thread-sqlite")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    for uri, run_id in [
        (mlflow_server.url, "run-thread-server"),
        (sqlite_uri, "run-thread-sqlite"),
    ]:
        client = MlflowClient(uri)
        parent = client.get_run(results[uri])
        assert parent.data.tags["evalcluster.run_id"] == run_id
        child = _children(client, parent.info.run_id)["t1"]
        traces = client.search_traces(
            locations=[parent.info.experiment_id], run_id=child.info.run_id
        )
        assert len(traces) == 2
        assert {t.info.tags["evalcluster.run_id"] for t in traces} == {run_id}


def test_sqlite_default_style_uri_works_without_a_server(tmp_path: Path):
    tracker = MlflowTracker(f"sqlite:///{tmp_path}/mlflow.db")
    parent = _start(tracker, "sqlite-suite", "run-sqlite")
    tracker.finish_evaluation(parent, status="FINISHED", summary={}, targets=[_target("t1")])
    run = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(parent)
    assert run.info.status == "FINISHED"
    assert (tmp_path / "mlflow.db").exists()


def test_finish_on_a_run_that_is_not_an_evaluation_raises_tracking_error(
    tracker: MlflowTracker, client: MlflowClient
):
    experiment_id = client.create_experiment(f"not-evalcluster-{time.time_ns()}")
    other = client.create_run(experiment_id)
    with pytest.raises(TrackingError, match="not an evalcluster evaluation run"):
        tracker.finish_evaluation(other.info.run_id, status="FINISHED", summary={}, targets=[])


def test_finish_on_a_missing_run_raises_tracking_error(tracker: MlflowTracker):
    with pytest.raises(TrackingError, match="MLflow logging failed"):
        tracker.finish_evaluation("0" * 32, status="FINISHED", summary={}, targets=[])
