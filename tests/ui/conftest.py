"""The workbench's tests: a real service on a local Ray (tenants of tests/serve's serve.yaml),
runs made through its API against the simulator, rows written straight into its store, and a
headless Chromium driven by Playwright (the system's /usr/bin/chromium; Playwright's own
browsers cannot be downloaded here).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.serve.conftest import (
    SERVER_SECRETS,
    TENANT_KEY_ENVS,
    TENANT_KEYS,
    Canary,
    environment,
    free_port,
    suite_document,
    write_config,
)
from tests.ui.lake_rows import make_row, write_run

CHROMIUM = Path("/usr/bin/chromium")
TERMINAL = {"finished", "failed", "killed", "budget_exhausted"}
XSS_OUTPUT = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2"> done'
XSS_RUN = "run-xss-crafted"


@dataclass(frozen=True)
class UiService:
    url: str
    store: Path
    work: Path
    keys: dict[str, str]
    config: Path | None = None

    def client(self, tenant: str | None = "team-b") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[tenant]}"} if tenant else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@pytest.fixture(scope="package")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiService]:
    import ray
    from ray import serve

    from evalcluster.serve.app import build_app

    canary = Canary()
    work = tmp_path_factory.mktemp("ui")
    store = work / "store"
    config = write_config(tmp_path_factory.mktemp("ui-config"), canary)
    port = free_port()
    env = {**SERVER_SECRETS, **{e: TENANT_KEYS[t] for t, e in TENANT_KEY_ENVS.items()}}
    with environment(env):
        started_ray = not ray.is_initialized()
        if started_ray:
            ray.init(num_cpus=4, namespace="evalcluster", include_dashboard=False,
                     log_to_driver=False, configure_logging=False)  # fmt: skip
        try:
            serve.start(http_options={"host": "127.0.0.1", "port": port})
            app = build_app({"config": str(config), "store_uri": str(store), "tracking_uri": "none",
                             "datasets": {"roots": [str(work)]}})  # fmt: skip
            serve.run(app, name="evalcluster", route_prefix="/")
            yield UiService(f"http://127.0.0.1:{port}", store, work, dict(TENANT_KEYS), config)
        finally:
            serve.shutdown()
            if started_ray:
                ray.shutdown()
            canary.close()


def create_suite(svc: UiService, name: str, tenant: str = "team-b", **kwargs: Any) -> None:
    accuracy = kwargs.pop("accuracy", 0.9)
    document = suite_document(svc.work, name, **kwargs)
    for i, provider in enumerate(document["providers"].values()):
        provider["simulator"]["accuracy"] = accuracy
        provider["simulator"]["seed"] = 100 + i
    with svc.client(tenant) as api:
        response = api.post("/v1/suites", json={"yaml": yaml.safe_dump(document)})
        assert response.status_code in (200, 201), response.text


def wait_for_run(
    svc: UiService, run_id: str, tenant: str = "team-b", timeout_s: float = 180
) -> dict:
    deadline = time.monotonic() + timeout_s
    with svc.client(tenant) as api:
        while time.monotonic() < deadline:
            state = api.get(f"/v1/runs/{run_id}").json()
            if state["status"] in TERMINAL and not state["live"]:
                return state
            time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not end")


def finished_run(svc: UiService, suite: str, **suite_kwargs: Any) -> str:
    """Create `suite` (as team-b), run it through ``POST /v1/runs`` and wait for it to finish:
    its run id."""
    create_suite(svc, suite, **suite_kwargs)
    with svc.client() as api:
        accepted = api.post("/v1/runs", json={"suite": suite})
        assert accepted.status_code == 202, accepted.text
    run_id = accepted.json()["run_id"]
    assert wait_for_run(svc, run_id)["status"] == "finished"
    return run_id


@dataclass(frozen=True)
class Runs:
    finished: str  # two targets, 40 samples, finished
    xss: str  # crafted rows whose outputs are HTML


@pytest.fixture(scope="package")
def runs(service: UiService) -> Runs:
    run_id = finished_run(service, "wb-small", samples=40, shard_size=10, accuracy=0.7)
    _write_crafted_run(service)
    return Runs(finished=run_id, xss=XSS_RUN)


def _write_crafted_run(svc: UiService) -> None:
    """A run owned by team-b whose rows were written through the store API: its model output
    is HTML that would run script if the page ever rendered it as markup."""
    from evalcluster.serve.owners import RunOwner, write_owner
    from evalcluster.serve.quotas import mark_run
    from evalcluster.store.fs import open_store

    store = open_store(str(svc.store))
    now = datetime.now(UTC).isoformat()

    def make(run_id: str, target: str, i: int) -> dict:
        if i == 0:
            return make_row(run_id, target, i, output=XSS_OUTPUT, prompt="<b>bold?</b>",
                            judge='{"rationale": "<img src=y onerror=alert(1)>"}')  # fmt: skip
        return make_row(run_id, target, i)

    write_owner(store, RunOwner(run_id=XSS_RUN, tenant="team-b", key_id="test", suite="arith",
                                suite_version="v-test", created_at=now))  # fmt: skip
    mark_run(store, "team-b", XSS_RUN, now[:10])
    write_run(store, XSS_RUN, ["t0"], 12, shard_size=6, make=make)


@pytest.fixture(scope="package")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: the browser tests need the system Chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()
