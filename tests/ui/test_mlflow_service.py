"""Labels to MLflow from the running service, end to end: the service's app redeployed with a
tracking URI (a SQLite file), a run that logs its samples' traces there, a label posted
through the API, and the human feedback found on the row's trace. The package's app (no
tracking) is put back afterwards."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.ui.conftest import UiService, finished_run


def _deploy(service: UiService, tracking_uri: str) -> None:
    from ray import serve

    from evalcluster.serve.app import build_app

    args = {"config": str(service.config), "store_uri": str(service.store),
            "tracking_uri": tracking_uri, "datasets": {"roots": [str(service.work)]}}  # fmt: skip
    app = build_app(args)
    serve.run(app, name="evalcluster", route_prefix="/")


@pytest.fixture(scope="module")
def tracked(service: UiService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('ui-mlflow') / 'mlflow.db'}"
    # Made here first: processes that each create the schema at once race on its migration.
    MlflowClient(uri).search_experiments()
    _deploy(service, uri)
    try:
        yield uri
    finally:
        _deploy(service, "none")


def test_a_label_posted_to_the_service_becomes_feedback_on_the_rows_trace(service, tracked):
    from mlflow import MlflowClient
    from mlflow.tracing.client import TracingClient

    run_id = finished_run(service, "wb-traced", samples=6, shard_size=3, accuracy=0.5)
    with service.client() as api:
        label = {"target": "t0", "sample_id": "q0001", "epoch": 0, "scorer": "exact",
                 "verdict": 0, "comment": "checked by hand"}  # fmt: skip
        rows = api.get(f"/v1/ui/runs/{run_id}/samples", params={"target": "t0"}).json()["rows"]
        label["sample_id"] = rows[0]["sample_id"]

        experiments: list = []
        deadline = time.monotonic() + 120
        found: list = []
        posted = False
        while time.monotonic() < deadline and not found:
            experiments = MlflowClient(tracked).search_experiments(
                filter_string="name LIKE 'evalcluster/%'"
            )
            traces = (
                TracingClient(tracked).search_traces(
                    experiment_ids=[e.experiment_id for e in experiments],
                    filter_string=(
                        f"tags.`evalcluster.run_id` = '{run_id}' AND tags.target = 't0' "
                        f"AND tags.sample_id = '{label['sample_id']}'"
                    ),
                )
                if experiments
                else []
            )
            if traces and not posted:  # the run's MLflow worker has logged the traces
                response = api.post(f"/v1/ui/runs/{run_id}/labels", json=label)
                assert response.status_code == 201, response.text
                posted = True
            if traces:
                found = [a for a in traces[0].info.assessments if a.name == "human/exact"]
            if not found:
                time.sleep(1)
    assert posted, "the run's traces never reached MLflow"
    assert len(found) == 1
    assert found[0].value == 0 and found[0].rationale == "checked by hand"
    assert found[0].source.source_type == "HUMAN"
    assert found[0].source.source_id.startswith("team-b/")
