"""The workbench's routes over real HTTP: the page's headers, tenancy, filters and labels."""

from __future__ import annotations

import re

import pytest

from tests.ui.conftest import XSS_OUTPUT


def test_the_page_is_static_and_locked_down(service):
    with service.client(None) as anonymous:
        page = anonymous.get("/ui")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        csp = page.headers["content-security-policy"]
        for rule in ("default-src 'self'", "script-src 'self'", "object-src 'none'",
                     "base-uri 'none'", "frame-ancestors 'none'"):  # fmt: skip
            assert rule in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert "<script" in page.text and "team-" not in page.text  # a shell, no data
        script = anonymous.get("/ui/static/app.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        # The page writes untrusted text as text only.
        assert not re.search(
            r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write", script.text
        )
        assert anonymous.get("/ui/static/..%2Fqueries.py").status_code == 404
        assert anonymous.get("/ui/static/nope.js").status_code == 404
        assert anonymous.get("/v1/ui/me").status_code == 401


def test_me_names_the_tenant(service):
    with service.client("viewer") as api:
        assert api.get("/v1/ui/me").json()["tenant"] == "viewer"


def test_summary_samples_and_a_sample(service, runs):
    with service.client() as api:
        summary = api.get(f"/v1/ui/runs/{runs.finished}/summary").json()
        assert set(summary["targets"]) == {"t0", "t1"} and summary["status"] == "finished"
        t0 = summary["targets"]["t0"]
        assert t0["rows"] == 40 and t0["scorers"]["exact"]["n"] + t0["errors"] <= 40
        wrong = api.get(
            f"/v1/ui/runs/{runs.finished}/samples",
            params={"target": "t0", "outcome": "wrong", "scorer": "exact"},
        ).json()
        assert wrong["total"] == sum(1 for r in wrong["rows"] if r["scores"]["exact"] < 1)
        row = wrong["rows"][0]
        detail = api.get(
            f"/v1/ui/runs/{runs.finished}/sample",
            params={"target": "t0", "sample_id": row["sample_id"]},
        ).json()
        assert detail["prompt"].startswith("What is") and detail["served_by"] == "sim-0"
        xss = api.get(f"/v1/ui/runs/{runs.xss}/samples", params={"q": "onerror"}).json()
        assert xss["total"] == 1 and xss["rows"][0]["output"] == XSS_OUTPUT


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"group": "nocolon"}, 422),
        ({"scorer": "nope"}, 422),
        ({"outcome": "maybe"}, 422),
        ({"min_score": "nan"}, 422),
        ({"limit": 0}, 422),
    ],
)
def test_bad_filters_are_named(service, runs, params, status):
    with service.client() as api:
        response = api.get(f"/v1/ui/runs/{runs.finished}/samples", params=params)
    assert response.status_code == status, response.text
    assert response.json()["field"]


def test_another_tenant_sees_none_of_it(service, runs):
    with service.client("team-a") as other:
        for path in ("summary", "samples", "labels", "review?target=t0&scorer=exact"):
            response = other.get(f"/v1/ui/runs/{runs.finished}/{path}")
            assert response.status_code == 404, path
        response = other.get("/v1/ui/compare", params={
            "run_a": runs.finished, "target_a": "t0", "run_b": runs.finished,
            "target_b": "t1", "scorer": "exact"})  # fmt: skip
        assert response.status_code == 404
        label = {"target": "t0", "sample_id": "q00000", "scorer": "exact", "verdict": 1}
        assert other.post(f"/v1/ui/runs/{runs.finished}/labels", json=label).status_code == 404


def test_labels_need_a_runner_and_a_real_row(service, runs):
    label = {"target": "t0", "sample_id": "q00001", "scorer": "exact", "verdict": 0,
             "comment": "<i>not</i> right"}  # fmt: skip
    with service.client("viewer") as viewer:
        assert viewer.post(f"/v1/ui/runs/{runs.xss}/labels", json=label).status_code == 403
    with service.client() as api:
        missing = api.post(f"/v1/ui/runs/{runs.finished}/labels",
                           json={**label, "sample_id": "no-such"})  # fmt: skip
        assert missing.status_code == 404
        bad = api.post(f"/v1/ui/runs/{runs.finished}/labels", json={**label, "verdict": 3})
        assert bad.status_code == 422 and "verdict" in bad.json()["field"]
        made = api.post(f"/v1/ui/runs/{runs.finished}/labels", json=label)
        assert made.status_code == 201, made.text
        body = made.json()
        assert (
            body["tenant"] == "team-b"
            and body["key_id"]
            and service.keys["team-b"] not in made.text
        )
        stored = api.get(f"/v1/ui/runs/{runs.finished}/labels").json()["labels"]
        assert any(lab["label_id"] == body["label_id"] for lab in stored)
        detail = api.get(
            f"/v1/ui/runs/{runs.finished}/sample", params={"target": "t0", "sample_id": "q00001"}
        ).json()
        assert detail["labels"][-1]["comment"] == "<i>not</i> right"
