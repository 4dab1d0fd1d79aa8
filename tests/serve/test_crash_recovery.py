"""Crash recovery over HTTP, for real: SIGKILL `evalcluster serve` and its embedded Ray mid-run,
start it again on the same store, see the run `interrupted`, resume it, and find every row
exactly once in the lake.

Only this test's own processes are killed (its process group, then any descendant left over);
other Ray clusters on the machine are never touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil
import pyarrow.parquet as pq
import pytest
import yaml

from evalcluster.serve.auth import KEYS_ENV
from evalcluster.serve.launch import ALLOW_NO_AUTH_ENV

from .conftest import free_port, suite_yaml

CLI = [sys.executable, "-m", "evalcluster.cli", "serve"]
KEY = "crash-test-key-not-secret"
OTHER_KEY = "crash-test-other-key-not-secret"
SAMPLES, TARGETS = 200, 2
TERMINAL = {"finished", "failed", "killed", "budget_exhausted"}


class ServiceProcess:
    """`evalcluster serve` in its own session (so its own process group), with embedded Ray."""

    def __init__(self, work: Path, store: Path, config: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (work / f"serve-{self.port}.log").open("w")
        env = {k: v for k, v in os.environ.items() if k not in (KEYS_ENV, ALLOW_NO_AUTH_ENV)}
        env[KEYS_ENV] = f"{KEY},{OTHER_KEY}"
        env.pop("RAY_ADDRESS", None)
        self.process = subprocess.Popen(
            [*CLI, "--port", str(self.port), "--config", str(config), "--store", str(store),
             "--tracking-uri", "none"],
            cwd=work,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def client(self, key: str = KEY) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )

    def wait_up(self, timeout_s: float = 240) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.process.poll() is None, Path(self.log.name).read_text()[-4000:]
            assert time.monotonic() < deadline, "the service did not come up"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(1)

    def processes(self) -> list[psutil.Process]:
        """The serving process, every process of its group and every descendant (Ray's)."""
        found: dict[int, psutil.Process] = {}
        with contextlib.suppress(psutil.Error):
            leader = psutil.Process(self.process.pid)
            found[leader.pid] = leader
            for child in leader.children(recursive=True):
                found[child.pid] = child
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error, OSError):
                if os.getpgid(proc.pid) == self.process.pid:
                    found[proc.pid] = proc
        return list(found.values())

    def kill(self) -> None:
        """SIGKILL the whole group, then anything of ours that left it; wait until all are
        gone."""
        ours = self.processes()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        for proc in ours:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(30)
        _, alive = psutil.wait_procs(ours, timeout=30)
        self.log.close()
        assert not [p for p in alive if _running(p)], f"left over: {alive}"


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait(api: httpx.Client, run_id: str, done, timeout_s: float, what: str) -> dict:
    deadline = time.monotonic() + timeout_s
    body: dict = {}
    while time.monotonic() < deadline:
        body = api.get(f"/v1/runs/{run_id}").json()
        if done(body):
            return body
        time.sleep(0.5)
    raise AssertionError(f"run {run_id}: {what} not within {timeout_s}s: {body}")


def _committed(store: Path, run_id: str) -> tuple[int, dict]:
    import json

    manifest = json.loads((store / "runs" / f"run_id={run_id}" / "_manifest.json").read_text())
    shards = manifest.get("shards", {})
    return sum(len(s) for s in shards.values()), manifest


def _lake_keys(store: Path, run_id: str) -> list[tuple[str, str, int]]:
    keys = []
    for path in sorted((store / "runs" / f"run_id={run_id}").glob("target=*/shard-*.parquet")):
        target = path.parent.name.removeprefix("target=")
        table = pq.read_table(path, columns=["sample_id", "epoch"])
        for sample_id, epoch in zip(
            table["sample_id"].to_pylist(), table["epoch"].to_pylist(), strict=True
        ):
            keys.append((sample_id, target, epoch))
    return keys


@pytest.mark.timeout(900)
def test_a_run_survives_a_killed_service_and_resumes_exactly_once(tmp_path):
    work, store = tmp_path, tmp_path / "store"
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({"base_dir": str(work), "driver_linger_s": 5}))
    first = ServiceProcess(work, store, config)
    second: ServiceProcess | None = None
    try:
        first.wait_up()
        with first.client() as api:
            created = api.post(
                "/v1/suites",
                json={"yaml": suite_yaml(work, "crash", samples=SAMPLES, shard_size=10,
                                         latency_ms=400, targets=TARGETS)},
            )  # fmt: skip
            assert created.status_code in (200, 201), created.text
            started = api.post("/v1/runs", json={"suite": "crash"})
            assert started.status_code == 202, started.text
            run_id = started.json()["run_id"]
            _wait(api, run_id, lambda b: b["done"] > 0 or b["status"] in TERMINAL, 180, "rows")
            deadline = time.monotonic() + 120
            while _committed_or_zero(store, run_id) == 0:
                assert time.monotonic() < deadline, "no shard was committed"
                time.sleep(0.2)
            mid = api.get(f"/v1/runs/{run_id}").json()
            assert mid["status"] == "running", mid
        first.kill()
        committed_shards, manifest = _committed(store, run_id)
        committed_rows = sum(
            r["rows"] for shards in manifest["shards"].values() for r in shards.values()
        )
        assert 0 < committed_rows < SAMPLES * TARGETS, manifest["status"]

        second = ServiceProcess(work, store, config)
        second.wait_up()
        with second.client() as api, second.client(OTHER_KEY) as other:
            status = api.get(f"/v1/runs/{run_id}").json()
            assert status["status"] == "interrupted", status
            assert status["live"] is False
            assert status["done"] == committed_rows > 0
            assert f"/v1/runs/{run_id}/resume" in status["message"]
            assert api.post(f"/v1/runs/{run_id}/cancel").status_code == 409
            listed = {r["run_id"]: r["status"] for r in api.get("/v1/runs").json()["runs"]}
            assert listed[run_id] == "interrupted"

            assert other.get(f"/v1/runs/{run_id}").status_code == 404
            assert other.post(f"/v1/runs/{run_id}/resume").status_code == 404

            resumed = api.post(f"/v1/runs/{run_id}/resume")
            assert resumed.status_code == 202, resumed.text
            assert resumed.json()["run_id"] == run_id
            final = _wait(api, run_id, lambda b: b["status"] in TERMINAL, 300, "the end")
            assert final["status"] == "finished", final
            assert final["done"] == final["total"] == SAMPLES * TARGETS
            again = api.post(f"/v1/runs/{run_id}/resume")
            assert again.status_code == 409, again.text
            assert again.json()["error"] == "conflict"

        keys = _lake_keys(store, run_id)
        duplicates = [k for k, n in Counter(keys).items() if n > 1]
        assert not duplicates, duplicates[:5]
        expected = {(f"q{i:05d}", f"t{t}", 0) for i in range(SAMPLES) for t in range(TARGETS)}
        assert set(keys) == expected
        assert len(keys) == SAMPLES * TARGETS
        shards_after, manifest_after = _committed(store, run_id)
        assert manifest_after["status"] == "finished"
        assert shards_after == SAMPLES * TARGETS // 10 > committed_shards
    finally:
        for service in (first, second):
            if service is not None and service.process.poll() is None:
                service.kill()


def _committed_or_zero(store: Path, run_id: str) -> int:
    try:
        return _committed(store, run_id)[0]
    except (OSError, ValueError):
        return 0
