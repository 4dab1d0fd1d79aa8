"""/v1/runs over real HTTP: start runs of stored suites, follow, page results, cancel."""

from __future__ import annotations

import time

import pytest

from .conftest import suite_yaml

TERMINAL = {"finished", "failed", "killed", "budget_exhausted"}


def wait_for_end(api, run_id: str, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = api.get(f"/v1/runs/{run_id}").json()
        if body["status"] in TERMINAL:
            return body
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not end within {timeout_s}s: {body}")


@pytest.fixture(scope="module")
def finished_run(service):
    """A 20-sample, two-target run, finished."""
    with service.client() as api:
        created = api.post("/v1/suites", json={"yaml": suite_yaml(service.work, "quick")})
        assert created.status_code in (200, 201), created.text
        started = api.post("/v1/runs", json={"suite": "quick"})
        assert started.status_code == 202, started.text
        final = wait_for_end(api, started.json()["run_id"])
        return {"accepted": started.json(), "final": final, "version": created.json()["version"]}


def test_starting_a_run_answers_202_with_its_id_and_links(finished_run):
    accepted = finished_run["accepted"]
    assert accepted["status"] == "pending"
    assert accepted["suite"] == "quick"
    assert accepted["version"] == finished_run["version"]
    assert accepted["run_id"].startswith("quick-")
    assert accepted["links"]["events"] == f"/v1/runs/{accepted['run_id']}/events"


def test_a_finished_run_reports_counts_cost_and_per_target_metrics(finished_run):
    final = finished_run["final"]
    assert final["status"] == "finished", final
    assert final["live"] is False
    assert final["done"] == final["total"] == 40  # 20 samples x 2 targets
    assert final["cost_usd"] > 0
    assert set(final["targets"]) == {"t0", "t1"}
    metrics = final["targets"]["t0"]["metrics"]
    assert metrics["rows"] == 20
    assert 0.5 <= metrics["scorers"]["exact"]["mean"] <= 1.0


def test_listing_runs_includes_the_finished_run(service, api, finished_run):
    run_id = finished_run["accepted"]["run_id"]
    listed = api.get("/v1/runs", params={"suite": "quick"}).json()
    assert run_id in [r["run_id"] for r in listed["runs"]]
    row = next(r for r in listed["runs"] if r["run_id"] == run_id)
    assert row["status"] == "finished" and row["targets"] == ["t0", "t1"]
    assert api.get("/v1/runs", params={"status": "no-such-status"}).json()["runs"] == []


def test_results_come_in_pages_that_cover_every_row_once(api, finished_run):
    run_id = finished_run["accepted"]["run_id"]
    seen, offset, pages = [], 0, 0
    while offset is not None:
        page = api.get(f"/v1/runs/{run_id}/results", params={"offset": offset, "limit": 15})
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["count"] == len(body["rows"]) <= 15
        seen += [(r["target"], r["sample_id"]) for r in body["rows"]]
        offset, pages = body["next_offset"], pages + 1
    assert pages == 3
    assert len(seen) == len(set(seen)) == 40
    row = api.get(f"/v1/runs/{run_id}/results", params={"limit": 1}).json()["rows"][0]
    assert {"prompt", "output", "score_exact", "cost_usd", "finished_at"} <= set(row)
    assert isinstance(row["finished_at"], str)


def test_results_of_one_target(api, finished_run):
    run_id = finished_run["accepted"]["run_id"]
    body = api.get(f"/v1/runs/{run_id}/results", params={"target": "t1", "limit": 100}).json()
    assert body["count"] == 20 and body["next_offset"] is None
    assert {r["target"] for r in body["rows"]} == {"t1"}
    unknown = api.get(f"/v1/runs/{run_id}/results", params={"target": "t9"})
    assert unknown.status_code == 404


def test_cancelling_a_finished_run_is_409(api, finished_run):
    run_id = finished_run["accepted"]["run_id"]
    response = api.post(f"/v1/runs/{run_id}/cancel")
    assert response.status_code == 409
    assert "finished" in response.json()["detail"]


def test_a_cancelled_run_ends_killed_with_its_committed_rows(service, api):
    slow = suite_yaml(service.work, "slow", samples=400, latency_ms=400, shard_size=4, targets=1)
    assert api.post("/v1/suites", json={"yaml": slow}).status_code in (200, 201)
    run_id = api.post("/v1/runs", json={"suite": "slow"}).json()["run_id"]
    early = api.get(f"/v1/runs/{run_id}/results")  # known at once, nothing committed yet
    assert early.status_code == 200, early.text
    assert early.json()["next_offset"] is None
    cancel = api.post(f"/v1/runs/{run_id}/cancel")
    assert cancel.status_code == 202, cancel.text
    assert cancel.json()["cancel_requested"] is True
    final = wait_for_end(api, run_id, timeout_s=90)
    assert final["status"] == "killed", final
    assert final["done"] < 400
    rows = api.get(f"/v1/runs/{run_id}/results", params={"limit": 1000}).json()
    assert rows["count"] == final["done"]


def test_unknown_runs_are_404_everywhere(api):
    for path in (
        "/v1/runs/nope-123",
        "/v1/runs/nope-123/results",
        "/v1/runs/..%2Fx",
        "/v1/runs/12345",
    ):
        response = api.get(path)
        assert response.status_code == 404, (path, response.text)
    assert api.post("/v1/runs/nope-123/cancel").status_code == 404


def test_a_run_of_an_unknown_suite_or_version_is_404(service, api):
    assert api.post("/v1/runs", json={"suite": "never-made"}).status_code == 404
    api.post("/v1/suites", json={"yaml": suite_yaml(service.work, "quick")})
    missing = api.post("/v1/runs", json={"suite": "quick", "version": "ffffffffffffffff"})
    assert missing.status_code == 404


def test_a_run_with_an_unknown_target_is_422_naming_it(service, api):
    api.post("/v1/suites", json={"yaml": suite_yaml(service.work, "quick")})
    response = api.post("/v1/runs", json={"suite": "quick", "targets": ["t0", "t7"]})
    assert response.status_code == 422
    assert response.json()["field"] == "targets[1]"


def test_invalid_run_options_are_422(api):
    for body in (
        {"suite": "quick", "budget_usd": -1},
        {"suite": "quick", "max_samples": 0},
        {"suite": "quick", "colour": "red"},
        {"suite": ""},
        {},
    ):
        response = api.post("/v1/runs", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"] == "invalid_request"
