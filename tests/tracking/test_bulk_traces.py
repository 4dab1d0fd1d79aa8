"""The bulk trace write stores what one `start_trace` per trace stored (SQLite, no server)."""

from __future__ import annotations

import functools
import sqlite3
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.tracing.client import TracingClient
from tracking_support import SUITE_TEXT, make_rows, make_targets

from evalcluster.tracking import sample_traces, tracker
from evalcluster.tracking.sample_traces import build_sample_trace, log_sample_traces

ARTIFACTS = "file:///tmp/evalcluster-bulk-test-artifacts"


def _store(tmp_path: Path, name: str) -> tuple[str, MlflowClient, str]:
    uri = f"sqlite:///{tmp_path / name}.db"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("bulk", artifact_location=ARTIFACTS)
    return uri, client, experiment_id


def _trace_rows(uri: str) -> dict[str, list[tuple]]:
    """Every row of every table keyed by a trace id, sorted: what the store holds of traces."""
    with sqlite3.connect(uri.removeprefix("sqlite:///")) as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        dump = {}
        for table in tables:
            columns = {c[1] for c in db.execute(f"PRAGMA table_info('{table}')")}
            if columns & {"request_id", "trace_id"}:
                dump[table] = sorted(db.execute(f"SELECT * FROM '{table}'"), key=repr)
    return dump


def test_bulk_write_stores_the_same_rows_as_one_start_trace_per_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    rows = make_rows("sim-a", 7, fail_index=2) + make_rows("sim-b", 5, fail_index=0)
    old_uri, old_client, old_experiment = _store(tmp_path, "one_by_one")
    new_uri, new_client, new_experiment = _store(tmp_path, "bulk")
    assert old_experiment == new_experiment
    # The same traces (ids, times, assessment ids) in both stores; one run per target in each.
    run_ids = {target: f"run-{target}" for target in ("sim-a", "sim-b")}
    by_target = {
        target: [
            build_sample_trace(
                row, experiment_id=old_experiment, source_run_id=run_id, eval_run_id="r1"
            )
            for row in rows
            if row["target"] == target
        ]
        for target, run_id in run_ids.items()
    }
    for traces in by_target.values():
        log_sample_traces(TracingClient(old_uri), old_experiment, traces, bulk=False)

    def refuse(*args, **kwargs):
        raise AssertionError("the bulk path fell back to one start_trace per trace")

    monkeypatch.setattr(sample_traces, "_start_one_by_one", refuse)
    for traces in by_target.values():
        log_sample_traces(TracingClient(new_uri), new_experiment, traces)

    old, new = _trace_rows(old_uri), _trace_rows(new_uri)
    assert new == old
    assert len(old["trace_info"]) == 12
    assert len(old["assessments"]) == 12 * 3  # the reference and one Feedback per scorer
    assert len(old["spans"]) == 12
    for client, experiment_id in ((old_client, old_experiment), (new_client, new_experiment)):
        for target, run_id in run_ids.items():
            traces = client.search_traces(
                locations=[experiment_id], filter_string=f"metadata.mlflow.sourceRun = '{run_id}'"
            )
            assert sorted(t.info.tags["sample_id"] for t in traces) == sorted(
                r["sample_id"] for r in rows if r["target"] == target
            )
            assert {t.info.tags["target"] for t in traces} == {target}


def test_a_batch_the_bulk_write_refuses_is_written_one_by_one(tmp_path: Path):
    uri, client, experiment_id = _store(tmp_path, "refused")
    traces = [
        build_sample_trace(row, experiment_id=experiment_id, source_run_id="run", eval_run_id="r")
        for row in make_rows("sim-a", 4)
    ]
    tracing = TracingClient(uri)
    tracing.start_trace(traces[1].info)  # an id already taken: the bulk insert fails
    assert sample_traces.start_traces_sql(tracing.store, experiment_id, [traces[1].info]) is None
    log_sample_traces(tracing, experiment_id, traces)
    stored = client.search_traces(locations=[experiment_id])
    assert len(stored) == 4
    assert all(len(t.info.assessments) == 3 for t in stored)


def _evaluate(uri: str, rows: list[dict]) -> dict[str, dict[str, dict]]:
    """Log a two-target evaluation with `MlflowTracker`; its traces by target, then sample."""
    evaluation = tracker.MlflowTracker(uri)
    parent = evaluation.start_evaluation(
        suite="arithmetic",
        suite_version="v1",
        run_id="run-bulk",
        results_uri="/tmp/evalstore/runs/run_id=run-bulk",
        suite_file_text=SUITE_TEXT,
        seed=7,
        sample_count=5,
    )
    evaluation.finish_evaluation(
        parent, status="FINISHED", summary={}, targets=make_targets(), samples=rows
    )
    client = MlflowClient(uri)
    seen: dict[str, dict[str, dict]] = {}
    experiment_id = client.get_run(parent).info.experiment_id
    for child in client.search_runs(
        [experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent}'",
    ):
        target = child.data.tags["evalcluster.target"]
        for trace in client.search_traces(locations=[experiment_id], run_id=child.info.run_id):
            assert trace.info.tags["target"] == target
            seen.setdefault(target, {})[trace.info.tags["sample_id"]] = {
                "state": trace.info.state.value,
                "tags": {k: v for k, v in trace.info.tags.items() if not k.startswith("mlflow.")},
                "previews": (trace.info.request_preview, trace.info.response_preview),
                "spans": [(s.name, s.inputs, s.outputs) for s in trace.data.spans],
                "assessments": sorted(
                    (
                        a.name,
                        a.source.source_id,
                        repr(a.value),
                        a.error.error_code if a.error else None,
                    )
                    for a in trace.info.assessments
                ),
            }
    return seen


def test_tracker_logs_the_same_traces_per_target_with_the_bulk_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    rows = make_rows("sim-openai", 5) + make_rows("sim-anthropic", 5, fail_index=1)
    bulk = _evaluate(f"sqlite:///{tmp_path}/bulk.db", rows)
    one_by_one = functools.partial(log_sample_traces, bulk=False)
    monkeypatch.setattr(tracker, "log_sample_traces", one_by_one)
    old = _evaluate(f"sqlite:///{tmp_path}/one_by_one.db", rows)
    assert bulk == old
    assert {target: len(samples) for target, samples in bulk.items()} == {
        "sim-openai": 5,
        "sim-anthropic": 5,
    }
    assert bulk["sim-anthropic"]["s001"]["state"] == "ERROR"
