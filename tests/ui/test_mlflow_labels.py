"""Review labels copied to MLflow as human feedback on the rows' traces (a real MLflow store on
SQLite, with traces written the way a run writes them)."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient
from mlflow.tracing.client import TracingClient

from evalcluster.tracking.sample_traces import build_sample_trace, log_sample_traces
from evalcluster.ui.labels import LabelRequest, new_label
from evalcluster.ui.mlflow_labels import log_label
from tests.ui.lake_rows import make_row

RUN = "run-mlflow-labels"


def _traced(tmp_path: Path) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment(
        "evalcluster/arith", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    rows = [make_row(RUN, "t0", i) for i in range(3)]
    traces = [
        build_sample_trace(row, experiment_id=experiment, source_run_id="parent", eval_run_id=RUN)
        for row in rows
    ]
    log_sample_traces(TracingClient(uri), experiment, traces)
    return uri


def _label(sample_id: str, verdict: float = 0.0):
    request = LabelRequest(
        target="t0", sample_id=sample_id, scorer="exact", verdict=verdict, comment="off by one"
    )
    return new_label(request, RUN, "team-b", "abc123def456")


def test_a_label_becomes_human_feedback_on_its_rows_trace(tmp_path):
    uri = _traced(tmp_path)
    label = _label("s00001")
    assert log_label(uri, label) is True
    traces = TracingClient(uri).search_traces(
        experiment_ids=[e.experiment_id for e in MlflowClient(uri).search_experiments()],
        filter_string=f"tags.`evalcluster.run_id` = '{RUN}' AND tags.sample_id = 's00001'",
    )
    human = [a for a in traces[0].info.assessments if a.name == "human/exact"]
    assert len(human) == 1
    assert human[0].value == 0.0 and human[0].rationale == "off by one"
    assert human[0].source.source_type == "HUMAN"
    assert human[0].source.source_id == "team-b/abc123def456"
    assert human[0].metadata["label_id"] == label.label_id


def test_a_row_without_a_trace_is_skipped(tmp_path):
    uri = _traced(tmp_path)
    assert log_label(uri, _label("s00099")) is False
    assert log_label(uri, _label("it's")) is False  # never spliced into a filter
