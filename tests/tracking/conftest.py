"""Fixtures of the tracking tests: a real `mlflow server`, a headless Chromium, a logged run."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tracking_support import (
    CHROMIUM,
    MLFLOW_BIN,
    SERVER_START_TIMEOUT_S,
    SUITE_TEXT,
    Chromium,
    LoggedEvaluation,
    MlflowServer,
    free_port,
    make_rows,
    make_targets,
    stop_group,
)


@pytest.fixture(scope="session")
def mlflow_server() -> Iterator[MlflowServer]:
    """A real MLflow tracking server on a free port, backed by SQLite in a temp folder."""
    with tempfile.TemporaryDirectory(prefix="evalcluster-mlflow-") as tmp:
        root = Path(tmp)
        port = free_port()
        log = (root / "server.log").open("wb")
        cmd = [
            str(MLFLOW_BIN),
            "server",
            "--backend-store-uri",
            f"sqlite:///{root}/mlflow.db",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ]
        # The server's background job runner (a pool of huey consumers for online scoring) is
        # not needed here and doubles the start time on a small machine.
        env = {
            **os.environ,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + SERVER_START_TIMEOUT_S
            while True:
                if proc.poll() is not None:
                    raise RuntimeError((root / "server.log").read_text()[-3000:])
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("mlflow server did not become healthy")
                time.sleep(0.5)
            yield MlflowServer(url=url, root=root)
        finally:
            stop_group(proc)
            log.close()


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Chromium]:
    if not CHROMIUM.exists():
        pytest.skip(
            "/usr/bin/chromium is absent; install it with "
            "`apt-get update && apt-get install -y chromium chromium-driver`"
        )
    browser = Chromium(tmp_path / "chromium-profile")
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="session")
def logged_evaluation(mlflow_server: MlflowServer) -> LoggedEvaluation:
    """A FINISHED two-target evaluation with 5 samples per target, 3 of them traced."""
    from evalcluster.tracking import MlflowTracker

    tracker = MlflowTracker(mlflow_server.url)
    run_id = "run-20260101-readback"
    results_uri = f"{mlflow_server.root}/evalstore/runs/run_id={run_id}"
    parent = tracker.start_evaluation(
        suite="arithmetic",
        suite_version="a1b2c3d4",
        run_id=run_id,
        results_uri=results_uri,
        suite_file_text=SUITE_TEXT,
        seed=7,
        sample_count=5,
    )
    rows = make_rows("sim-openai", 5) + make_rows("sim-anthropic", 5, fail_index=1)
    tracker.finish_evaluation(
        parent,
        status="FINISHED",
        summary={"run_id": run_id, "targets": {"sim-openai": {"exact": {"mean": 0.6}}}},
        targets=make_targets(),
        samples=rows,
        max_traced_samples=3,
    )
    return LoggedEvaluation(
        parent_run_id=parent,
        run_id=run_id,
        suite="arithmetic",
        results_uri=results_uri,
        traced_per_target=3,
    )
