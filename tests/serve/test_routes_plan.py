"""POST /v1/plan over real HTTP: the plan of a stored or inline suite, hostile bodies, and a
from_run that must belong to the caller's tenant."""

from __future__ import annotations

import math
import time

import pytest

from evalcluster.scoring.planning import Design, diff_sd, samples_needed

from .conftest import TENANT_KEYS, suite_document, suite_yaml
from .test_routes_runs import TERMINAL


def _wait_for_end(api, run_id: str, timeout_s: float = 120) -> dict:
    """The run's final status body; a busy service's 503 on the way is waited out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = api.get(f"/v1/runs/{run_id}")
        if response.status_code == 200 and response.json()["status"] in TERMINAL:
            return response.json()
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not end within {timeout_s}s")


DEEP: list = [1]
for _ in range(80):
    DEEP = [DEEP]
ASSUMED = {"p_a": 0.70, "p_b": 0.72, "correlation": 0.7, "sequential": False}


@pytest.fixture(scope="module")
def stored(service) -> str:
    with service.client() as api:
        # A prompt of its own: the service's answer cache is shared by every test of the
        # package, and other tests' runs must not find these answers already paid for.
        document = suite_yaml(
            service.work, "plan-quick", prompt="Compute {question}; the number only."
        )
        created = api.post("/v1/suites", json={"yaml": document})
        assert created.status_code in (200, 201), created.text
    return "plan-quick"


def test_a_stored_suite_gets_the_paired_sample_size_and_its_cost(api, stored) -> None:
    response = api.post("/v1/plan", json={"name": stored, **ASSUMED})
    assert response.status_code == 200, response.text
    plan = response.json()
    expected = samples_needed(Design(diff_sd(0.70, 0.72, 0.7)), 0.02)
    assert plan["samples_needed"] == expected
    assert (plan["a"], plan["b"], plan["scorer"]) == ("t0", "t1", "numeric")
    assert plan["fixed"]["calls"] == 2 * expected
    assert plan["fixed"]["cost_usd"] > 0
    assert plan["dataset_samples"] == 20
    assert any("fewer than" in note for note in plan["notes"])


def test_an_inline_suite_and_a_detectable_difference(service, api) -> None:
    document = suite_document(service.work, "plan-inline", samples=10)
    body = {"suite": document, **ASSUMED, "n": 1000, "a": "t1", "b": "t0", "scorer": "exact"}
    response = api.post("/v1/plan", json=body)
    assert response.status_code == 200, response.text
    plan = response.json()
    assert (plan["a"], plan["b"], plan["scorer"]) == ("t1", "t0", "exact")
    sd = diff_sd(0.70, 0.72, 0.7)
    assert plan["detectable_difference"] == pytest.approx(2.8 * sd / math.sqrt(1000), rel=0.01)
    assert api.get("/v1/suites/plan-inline").status_code == 404  # planned, not stored


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "plan-quick", **ASSUMED, "alpha": 1.5}, "alpha"),
        ({"name": "plan-quick", **ASSUMED, "delta": "lots"}, "delta"),
        ({"name": "plan-quick", **ASSUMED, "icc": -1}, "icc"),
        ({"name": "plan-quick", **ASSUMED, "surprise": 1}, "surprise"),
        ({"name": "plan-quick", **ASSUMED, "from_run": "../../etc/passwd"}, "from_run"),
        ({"name": "plan-quick", "yaml": "x", **ASSUMED}, None),
        ({"name": "plan-quick", "p_a": 0.5}, None),
        ({"suite": {"a": DEEP}, **ASSUMED}, None),  # nesting past the limit
    ],
)
def test_bad_bodies_are_422_naming_the_field(api, stored, body, field) -> None:
    response = api.post("/v1/plan", json=body)
    assert response.status_code == 422, response.text
    if field is not None:
        assert field in (response.json().get("field") or "")


def test_a_target_or_scorer_the_suite_lacks_is_422_and_an_unknown_suite_404(api, stored) -> None:
    unknown = api.post("/v1/plan", json={"name": stored, **ASSUMED, "a": "t9"})
    assert unknown.status_code == 422 and unknown.json()["field"] == "a"
    scorer = api.post("/v1/plan", json={"name": stored, **ASSUMED, "scorer": "nope"})
    assert scorer.status_code == 422 and scorer.json()["field"] == "scorer"
    assert api.post("/v1/plan", json={"name": "never-made", **ASSUMED}).status_code == 404


def test_plan_needs_a_key(service) -> None:
    with service.client(key=None) as anonymous:
        assert anonymous.post("/v1/plan", json={"name": "x", **ASSUMED}).status_code == 401


def test_from_run_reads_the_callers_run_and_another_tenant_gets_404(service, api, stored) -> None:
    started = api.post("/v1/runs", json={"suite": stored})
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    final = _wait_for_end(api, run_id)
    assert final["status"] == "finished", final
    body = {"name": stored, "from_run": run_id, "delta": 0.05, "sequential": False}
    mine = api.post("/v1/plan", json=body)
    assert mine.status_code == 200, mine.text
    plan = mine.json()
    assert plan["source"] == f"run {run_id}" and plan["pilot"]["n"] == 20
    assert plan["fixed"]["by_target"]["t0"]["basis"] == "run"
    with service.client(key=TENANT_KEYS["team-b"]) as other:
        theirs = other.post("/v1/plan", json=body)
        assert theirs.status_code == 404, theirs.text
        assert run_id in theirs.json()["detail"]
