"""The workbench's sequential comparison panel and compare form in a real browser
(Playwright on the system Chromium) against a real service: a small `compare:` run of two
simulated targets far apart in accuracy, watched live from the run page."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.serve.conftest import suite_document
from tests.ui.conftest import wait_for_run
from tests.ui.test_browser import TIMEOUT_MS, _axe, _save, _sign_in, context  # noqa: F401

ACCURACY = {"sim-0": 0.3, "sim-1": 0.95}


@pytest.fixture(scope="module")
def compare_suite(service) -> str:
    # 1,000 samples at most, in shards of 20 with 400 ms calls: the difference (0.65) decides
    # after a few shards, a few seconds in, long before the cap.
    document = suite_document(
        service.work,
        "wb-versus",
        samples=1_000,
        shard_size=20,
        latency_ms=400,
        compare={"a": "t0", "b": "t1", "scorer": "exact", "max_samples": 1_000},
    )
    for name, provider in document["providers"].items():
        provider["simulator"]["accuracy"] = ACCURACY[name]
    with service.client() as api:
        response = api.post("/v1/suites", json={"yaml": yaml.safe_dump(document)})
        assert response.status_code in (200, 201), response.text
    return "wb-versus"


def test_a_compare_run_shows_its_comparison_live_on_the_run_page(
    context,  # noqa: F811
    service,
    compare_suite,
    tmp_path,
):
    with service.client() as api:
        accepted = api.post("/v1/runs", json={"suite": compare_suite})
        assert accepted.status_code == 202, accepted.text
    run_id = accepted.json()["run_id"]
    page = _sign_in(context, service, hash_=f"#/run/{run_id}")
    page.get_by_role("heading", name=re.compile(f"^Run {run_id}")).wait_for()
    status_at_load = page.locator("h1 .pill").inner_text()

    panel = page.locator("#comparison")
    verdict = panel.locator(".seq-verdict[data-verdict='b_better']")
    verdict.wait_for(timeout=120_000)  # no reload: the page follows the run's event stream
    assert verdict.inner_text().startswith("B is better")
    state = wait_for_run(service, run_id)
    comparison = state["comparison"]
    assert state["status"] == "finished" and comparison["verdict"] == "b_better"
    assert comparison["samples_used"] < comparison["samples_cap"] == 1_000

    if status_at_load in ("pending", "running"):
        # Followed live: the panel now shows the final look without the page being reloaded.
        panel.get_by_text(f"{comparison['samples_used']:,} / 1,000").wait_for()
    else:  # the run ended before the page drew (a slow machine): reload for the final state
        page.reload()
    panel.get_by_text(f"{comparison['samples_at_decision']:,} samples").wait_for()
    assert panel.get_by_role("heading", name="Sequential comparison").count() == 1
    assert panel.locator("dd.not-spent").inner_text().startswith("$")
    plot = panel.locator("figure svg")
    assert plot.locator("polyline").count() == 1 and plot.locator("polygon").count() == 1
    assert plot.locator("line.decided").count() == 1
    assert "decided at" in (plot.text_content() or "")
    _save(page, tmp_path, "comparison.png")


def test_the_compare_form_offers_the_runs_targets_and_scorers(
    context,  # noqa: F811
    service,
    runs,
):
    page = _sign_in(context, service, hash_="#/compare")
    page.get_by_label("Run A").select_option(runs.finished)
    page.get_by_label("Run B").select_option(runs.finished)
    target_a, target_b = page.get_by_label("Target A"), page.get_by_label("Target B")
    expect_options = ["t0", "t1"]
    page.wait_for_function(
        "() => document.querySelector('select[name=target_b]')?.options.length === 2"
    )
    assert target_a.locator("option").all_inner_texts() == expect_options
    assert target_b.locator("option").all_inner_texts() == expect_options
    scorers = page.get_by_label("Scorer").locator("option").all_inner_texts()
    assert sorted(scorers) == ["exact", "numeric"]
    assert target_a.input_value() == "t0" and target_b.input_value() == "t1"  # two targets
    page.get_by_label("Scorer").select_option("exact")
    page.get_by_role("button", name="Compare").click()
    page.get_by_role("heading", name=re.compile(r"Flipped items \(\d+\)")).wait_for()
    assert "target_b=t1" in page.url and "scorer=exact" in page.url


def test_no_serious_accessibility_violations_on_the_comparison_panel(
    chromium, service, compare_suite
):
    with service.client() as api:
        runs = api.get("/v1/runs", params={"limit": 200}).json()["runs"]
    compared = [r["run_id"] for r in runs if r["suite"] == compare_suite]
    if not compared:
        pytest.skip("the live comparison test makes the run this one checks")
    run_id = compared[0]
    wait_for_run(service, run_id)
    browser_context = chromium.new_context(viewport={"width": 1400, "height": 900}, bypass_csp=True)
    browser_context.set_default_timeout(TIMEOUT_MS)
    try:
        page = _sign_in(browser_context, service, hash_=f"#/run/{run_id}")
        page.get_by_role("heading", name="Sequential comparison").wait_for()
        page.locator("#comparison figure svg").wait_for()
        assert _axe(page) == []
        page.goto(f"{service.url}/ui#/compare")
        page.wait_for_function(
            "() => (document.querySelector('select[name=scorer]')?.options.length ?? 0) > 0"
        )
        assert _axe(page) == []
    finally:
        browser_context.close()
