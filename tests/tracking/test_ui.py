"""The MLflow UI shows a logged evaluation: run metrics and per-sample results (headless Chromium).

Set EVALCLUSTER_UPDATE_DOCS_IMG=1 to also write the screenshots to docs/img/.
"""

from __future__ import annotations

import os
import shutil
import struct
import time
from pathlib import Path

from mlflow import MlflowClient
from tracking_support import Chromium, LoggedEvaluation, MlflowServer

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"

_CLOSE_ASSISTANT = """(() => {
  const button = document.querySelector('button[aria-label="Close"]');
  if (button) { button.click(); return true; }
  return false;
})()"""

_SCROLL_TO_METRICS = """(() => {
  const heading = Array.from(document.querySelectorAll('h1,h2,h3,h4,h5,span,div'))
    .find(e => /^Metrics \\(\\d+\\)$/.test(e.textContent.trim()));
  if (!heading) return null;
  heading.scrollIntoView({block: 'start'});
  return heading.getBoundingClientRect().top;
})()"""


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def _save(browser: Chromium, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    browser.screenshot(path)
    width, height = _png_size(path)
    assert (width, height) == (1440, 900)
    assert path.stat().st_size > 20_000  # a blank page compresses to a few kB
    if os.environ.get("EVALCLUSTER_UPDATE_DOCS_IMG") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMG / name)
    return path


def test_mlflow_ui_shows_run_metrics_and_per_sample_results(
    mlflow_server: MlflowServer,
    logged_evaluation: LoggedEvaluation,
    chromium: Chromium,
    tmp_path: Path,
):
    client = MlflowClient(mlflow_server.url)
    parent = client.get_run(logged_evaluation.parent_run_id)
    experiment_id = parent.info.experiment_id
    child = client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.mlflow.parentRunId = '{parent.info.run_id}' "
            "and tags.`evalcluster.target` = 'sim-openai'"
        ),
    )[0]
    chromium.call(
        "Emulation.setDeviceMetricsOverride",
        width=1440,
        height=900,
        deviceScaleFactor=1,
        mobile=False,
    )

    chromium.goto(f"{mlflow_server.url}/#/experiments/{experiment_id}/runs/{parent.info.run_id}")
    text = chromium.wait_for_text(
        [logged_evaluation.run_id, "sim-openai/exact/mean", "sim-anthropic/errors", "cost_usd"]
    )
    assert "Finished" in text
    if chromium.evaluate(_CLOSE_ASSISTANT):
        time.sleep(1)  # the page re-lays out without the side panel
    top = chromium.evaluate(_SCROLL_TO_METRICS)
    assert top is not None and 0 <= top < 450, top
    time.sleep(0.5)
    _save(chromium, tmp_path, "mlflow-run.png")

    chromium.goto(
        f"{mlflow_server.url}/#/experiments/{experiment_id}/runs/{child.info.run_id}/traces"
    )
    text = chromium.wait_for_text(
        [
            "What is 17+25?",  # s000, right
            "What is 18+25?",  # s001, wrong: answered 7
            "What is 19+25?",
            "Expected output",
            "exact",
            "numeric",
            "3 of 3",
        ]
    )
    assert "What is 20+25?" not in text  # beyond max_traced_samples
    if chromium.evaluate(_CLOSE_ASSISTANT):
        time.sleep(1)
    _save(chromium, tmp_path, "mlflow-samples.png")
