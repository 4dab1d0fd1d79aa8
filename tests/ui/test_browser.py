"""The workbench in a real browser (Playwright driving the system Chromium) against a real
service, with runs made through its API against the simulator.

Each page's screenshot is saved to the test's tmp dir; with EVALCLUSTER_UPDATE_DOCS_IMG=1 also
to docs/img/ (the README shows the best of them).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import XSS_OUTPUT, create_suite, wait_for_run

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
AXE = Path(__file__).with_name("vendor") / "axe.min.js"
TIMEOUT_MS = 30_000


def _save(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    if os.environ.get("EVALCLUSTER_UPDATE_DOCS_IMG") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMG / f"workbench-{name}")


@pytest.fixture
def context(chromium):
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


def _sign_in(context, service, tenant: str = "team-b", hash_: str = "#/runs"):
    page = context.new_page()
    page.goto(f"{service.url}/ui{hash_}")
    page.get_by_label("API key").fill(service.keys[tenant])
    page.get_by_role("button", name="Sign in").click()
    page.locator("#who").filter(has_text=tenant).wait_for()
    return page


def _open_drawer(page, row, title: str) -> tuple[Any, str]:
    """Click `row` and wait for its drawer, headed `title` with its sample id for ``{}``: the
    drawer and the sample id."""
    sample_id = row.get_attribute("data-sample")
    row.click()
    drawer = page.get_by_role("dialog")
    drawer.get_by_role("heading", name=title.format(sample_id)).wait_for()
    return drawer, sample_id


def test_sign_in_refuses_a_wrong_key_and_remembers_a_good_one_in_the_tab(
    context, service, tmp_path
):
    page = context.new_page()
    page.goto(f"{service.url}/ui")
    _save(page, tmp_path, "signin.png")
    page.get_by_label("API key").fill("not-a-key")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("That key was not accepted.").wait_for()
    assert page.evaluate("sessionStorage.length") == 0
    page.get_by_label("API key").fill(service.keys["team-b"])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Runs", exact=True).wait_for()
    assert page.evaluate("document.cookie") == ""
    page.reload()
    page.get_by_role("heading", name="Runs", exact=True).wait_for()  # still signed in, same tab
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in", exact=True).wait_for()
    assert page.evaluate("sessionStorage.length") == 0


def test_a_run_started_from_the_page_shows_live_progress_and_can_be_cancelled_and_resumed(
    context, service, runs, tmp_path
):
    create_suite(service, "wb-live", samples=600, shard_size=8, latency_ms=150, accuracy=0.8)
    page = _sign_in(context, service)
    page.get_by_label("Suite").select_option("wb-live")
    page.get_by_role("button", name="Start run").click()
    started = page.get_by_role("status").filter(has_text="Started ")
    started.wait_for()
    run_id = started.inner_text().split("Started ", 1)[1].strip()
    row = page.locator(f'tr[data-run="{run_id}"]')
    done_cell = row.locator(".done")
    seen: list[int] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len(set(seen)) < 3:
        text = done_cell.inner_text() if done_cell.count() else ""
        match = re.match(r"([\d,]+) / ([\d,]+)", text)
        if match and int(match.group(1).replace(",", "")) > 0:
            seen.append(int(match.group(1).replace(",", "")))
        time.sleep(0.2)
    assert len(set(seen)) >= 3 and seen == sorted(seen), seen  # it moved, forwards
    _save(page, tmp_path, "runs.png")

    providers = _sign_in(context, service, hash_="#/providers")  # a new tab signs in anew
    providers.get_by_role("heading", name="Providers", exact=True).wait_for()
    providers.locator("td", has_text="sim-0").first.wait_for()
    _save(providers, tmp_path, "providers.png")
    providers.close()

    row.get_by_role("button", name="Cancel").click()
    assert wait_for_run(service, run_id)["status"] == "killed"
    page.locator(f'tr[data-run="{run_id}"] .pill', has_text="killed").wait_for(timeout=60_000)

    page.locator(f'tr[data-run="{run_id}"]').get_by_role("button", name="Resume").click()
    page.get_by_role("status").filter(has_text=f"Resumed {run_id}").wait_for()
    resumed = page.locator(f'tr[data-run="{run_id}"] .pill', has_text=re.compile("pending|running"))
    resumed.wait_for(timeout=60_000)
    with service.client() as api:  # stop it again: the rest of the tests need no more of it
        api.post(f"/v1/runs/{run_id}/cancel")
    wait_for_run(service, run_id)


def test_the_run_page_shows_scores_targets_and_plots(context, service, runs, tmp_path):
    page = _sign_in(context, service, hash_=f"#/run/{runs.finished}")
    page.get_by_role("heading", name="Scores", exact=True).wait_for()
    row = page.locator('tr[data-target="t0"][data-scorer="exact"]')
    assert re.match(r"\d+\.\d%", row.locator(".mean").inner_text())
    assert page.locator('section[aria-label="target t1"]').get_by_text("Latency p90").count() == 1
    assert page.locator("figure svg").count() >= 4  # two latency and two cost distributions
    _save(page, tmp_path, "run.png")


def test_filtering_samples_and_opening_a_drawer(context, service, runs, tmp_path):
    page = _sign_in(context, service, hash_=f"#/samples/{runs.finished}")
    count = page.locator(".pager .count").first
    count.filter(has_text="of 80").wait_for()
    page.get_by_label("Target").select_option("t1")
    page.get_by_label("Outcome").select_option("wrong")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"outcome=wrong"))
    expect(count).not_to_have_text(re.compile(" of 80$"))
    cells = page.locator("tbody tr.clickable td:nth-child(4)")
    assert cells.count() > 0
    assert set(cells.all_inner_texts()) <= {"0.000", "0"}
    assert set(page.locator("tbody tr.clickable td:nth-child(1)").all_inner_texts()) == {"t1"}
    _save(page, tmp_path, "samples.png")
    drawer, sample_id = _open_drawer(page, page.locator("tbody tr.clickable").first, "Sample {}")
    for heading in ("Prompt", "Output", "Reference", "Judge rationale", "Review"):
        assert drawer.get_by_role("heading", name=heading, exact=True).count() == 1
    assert "Served by" in drawer.inner_text() and "sim-1" in drawer.inner_text()
    _save(page, tmp_path, "drawer.png")
    page.keyboard.press("Escape")
    assert page.get_by_role("dialog").count() == 0
    page.get_by_label("Search").fill(sample_id)
    page.get_by_label("Outcome").select_option("")
    page.get_by_role("button", name="Filter").click()
    count.filter(has_text="1–1 of 1").wait_for()


def test_a_comparison_lists_flipped_items_that_open(context, service, runs, tmp_path):
    hash_ = (f"#/compare?run_a={runs.finished}&target_a=t0&run_b={runs.finished}"
             "&target_b=t1&scorer=exact")  # fmt: skip
    page = _sign_in(context, service, hash_=hash_)
    heading = page.get_by_role("heading", name=re.compile(r"Flipped items \(\d+\)"))
    heading.wait_for()
    flipped = int(re.search(r"\((\d+)\)", heading.inner_text()).group(1))
    assert flipped > 0 and page.locator("tr.flip").count() == flipped
    assert (
        page.locator(".verdict")
        .inner_text()
        .startswith(("B is better", "A is better", "No difference shown"))
    )
    assert page.locator("figure svg polyline").count() == 1  # the interval path
    _save(page, tmp_path, "compare.png")
    drawer, _ = _open_drawer(page, page.locator("tr.flip").first, "Sample {}: A against B")
    assert drawer.get_by_role("heading", name=re.compile("^A: ")).count() == 1
    assert drawer.get_by_role("heading", name=re.compile("^B: ")).count() == 1


def test_labelling_three_items_changes_the_corrected_score_and_agreement(
    context, service, runs, tmp_path
):
    page = _sign_in(
        context, service, hash_=f"#/review/{runs.finished}?target=t1&scorer=exact&mode=random"
    )
    stats = page.locator("#review-stats")
    stats.locator(".labelled").wait_for()
    before = {c: stats.locator(f".{c}").inner_text() for c in ("labelled", "corrected", "kappa")}
    labelled = int(before["labelled"])
    verdicts = []
    for i in range(3):
        item = page.locator(".review-item").first
        sample_id = item.get_attribute("data-sample")
        judge_right = "right" in (item.locator("h3 span").nth(1).get_attribute("class") or "")
        # Disagree with the judge on the first item, agree on the others.
        says_right = (not judge_right) if i == 0 else judge_right
        verdicts.append((sample_id, judge_right, says_right))
        item.get_by_label(f"comment on {sample_id}").fill(f"reviewed {i}")
        item.get_by_role(
            "button", name=f"{sample_id} is {'right' if says_right else 'wrong'}"
        ).click()
        stats.locator(".labelled").filter(has_text=str(labelled + i + 1)).wait_for()
        page.locator(f'.review-item[data-sample="{sample_id}"]').wait_for(state="detached")
    after = {c: stats.locator(f".{c}").inner_text() for c in ("labelled", "corrected", "kappa")}
    assert after["corrected"] != before["corrected"] and after["corrected"] != "–"
    assert after["kappa"] != before["kappa"]
    assert stats.locator(".ppi").inner_text() != "–"
    _save(page, tmp_path, "review.png")
    page.goto(f"{service.url}/ui#/run/{runs.finished}")
    row = page.locator('tr[data-target="t1"][data-scorer="exact"]')
    row.locator(".corrected").filter(has_text=after["corrected"]).wait_for()


def test_a_second_tenant_sees_none_of_it(context, service, runs):
    page = _sign_in(context, service, tenant="team-a")
    page.get_by_text("No runs yet.").wait_for()
    assert runs.finished not in page.locator("main").inner_text()
    page.goto(f"{service.url}/ui#/run/{runs.finished}")
    page.get_by_text(f"no run '{runs.finished}'").wait_for()
    page.goto(f"{service.url}/ui#/samples/{runs.finished}")
    page.get_by_text(f"no run '{runs.finished}'").wait_for()
    page.goto(f"{service.url}/ui#/review/{runs.xss}")
    page.get_by_text(f"no run '{runs.xss}'").wait_for()


def test_html_in_a_model_output_is_shown_as_harmless_text(context, service, runs, tmp_path):
    page = _sign_in(context, service, hash_=f"#/samples/{runs.xss}")
    output_cell = page.locator('tr[data-sample="s00000"] td.output')
    output_cell.wait_for()
    assert output_cell.inner_text() == XSS_OUTPUT
    page.locator('tr[data-sample="s00000"]').click()
    drawer = page.get_by_role("dialog")
    drawer.get_by_label("Output").filter(has_text="<script>").wait_for()
    assert drawer.get_by_label("Output").inner_text() == XSS_OUTPUT
    assert drawer.get_by_label("Prompt").inner_text() == "<b>bold?</b>"
    assert "<img src=y onerror=alert(1)>" in drawer.get_by_label("Judge rationale").inner_text()
    assert page.evaluate("window.__xss") is None
    assert page.locator("main img, #drawer img, #drawer b, main script").count() == 0
    _save(page, tmp_path, "xss.png")


def test_no_serious_accessibility_violations(chromium, service, runs):
    # Only this context skips the page's CSP, to inject axe-core; the other tests keep it.
    context = chromium.new_context(viewport={"width": 1400, "height": 900}, bypass_csp=True)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(f"{service.url}/ui")
        page.get_by_label("API key").wait_for()
        problems = {"sign-in": _axe(page)}
        page.get_by_label("API key").fill(service.keys["team-b"])
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name="Runs", exact=True).wait_for()
        pages = {
            "runs": ("#/runs", "Your runs"),
            "run": (f"#/run/{runs.finished}", "Scores"),
            "samples": (f"#/samples/{runs.finished}", None),
            "compare": (
                f"#/compare?run_a={runs.finished}&target_a=t0&run_b={runs.finished}"
                "&target_b=t1&scorer=exact",
                "Difference (B − A)",
            ),  # fmt: skip
            "review": (f"#/review/{runs.finished}", "Queue"),
            "providers": ("#/providers", "Providers"),
        }
        for name, (hash_, heading) in pages.items():
            page.goto(f"{service.url}/ui{hash_}")
            if heading:
                page.get_by_role("heading", name=heading, exact=True).wait_for()
            else:
                page.locator("tbody tr.clickable").first.wait_for()
            problems[name] = _axe(page)
        page.goto(f"{service.url}/ui#/samples/{runs.finished}")
        page.locator("tbody tr.clickable").first.click()
        page.get_by_role("dialog").wait_for()
        problems["drawer"] = _axe(page)
    finally:
        context.close()
    assert problems == {name: [] for name in problems}


def _axe(page) -> list[str]:
    """Serious and critical axe-core violations on the page, as 'rule: first target'."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    results = page.evaluate("async () => await axe.run(document)")
    return [
        f"{v['id']}: {v['nodes'][0]['target']}"
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]
