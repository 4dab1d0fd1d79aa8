"""API keys through whole runs: a wrong key fails fast, and no key is ever written anywhere.

The simulator accepts only the keys it is given, so a wrong key gets each wire format's real
auth error. The CLI test runs `evalcluster run` as a user would, with distinctive key values in
its environment, then searches everything the run left behind for them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import ray

from evalcluster.errors import SpecError
from evalcluster.jobs.driver import run_suite
from evalcluster.jobs.options import RunOptions
from evalcluster.jobs.prepare import prepare_suite
from evalcluster.simulator import SimulatorConfig, SimulatorThread
from evalcluster.store.fs import open_store
from evalcluster.store.lake import read_results
from tests.conftest import write_suite

RIGHT_ENV, WRONG_ENV = "EVALCLUSTER_SECRETS_RIGHT_KEY", "EVALCLUSTER_SECRETS_WRONG_KEY"
SAMPLES = 12
# What each wire format's provider says to a key it does not know (see simulator/formats).
AUTH_MESSAGES = {
    "bad-openai": "Incorrect API key provided",
    "bad-anthropic": "invalid x-api-key",
    "bad-gemini": "API key not valid",
}


@pytest.fixture(scope="module")
def keyed_ray() -> Iterator[None]:
    """A fresh local Ray whose workers see the right and the wrong key, as a user's would."""
    keys = {RIGHT_ENV: "right", WRONG_ENV: "wrong"}
    with pytest.MonkeyPatch.context() as env:
        for name, value in keys.items():
            env.setenv(name, value)
        # address="local": always a new cluster, never another test session's.
        ray.init(
            address="local",
            num_cpus=4,
            namespace="evalcluster",
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            runtime_env={"env_vars": keys},
        )
        try:
            yield
        finally:
            ray.shutdown()


def provider(kind: str, url: str, key_env: str) -> dict[str, Any]:
    base_url = f"{url}/v1" if kind == "openai" else url
    return {
        "kind": kind,
        "base_url": base_url,
        "api_key_env": key_env,
        "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
    }


def test_a_wrong_key_fails_each_sample_once_with_auth_and_the_run_still_finishes(
    keyed_ray, tmp_path
):
    with SimulatorThread(SimulatorConfig(api_keys=["right"])) as sim:
        providers = {
            "good": provider("openai", sim.url, RIGHT_ENV),
            "bad-openai": provider("openai", sim.url, WRONG_ENV),
            "bad-anthropic": provider("anthropic", sim.url, WRONG_ENV),
            "bad-gemini": provider("gemini", sim.url, WRONG_ENV),
        }
        targets = [{"name": name, "provider": name, "model": "sim-1"} for name in providers]
        path = write_suite(tmp_path, samples=SAMPLES, providers=providers, targets=targets)
        store = str(tmp_path / "store")
        result = run_suite(
            prepare_suite(path), RunOptions(store=store, tracking_uri=None, run_id="wrong-key")
        )
        stats = sim.stats()

    assert result.status == "finished", result.message
    # One request per sample: an auth error is never retried and never trips the breaker.
    for wire in ("openai", "anthropic", "gemini"):
        assert stats["by_format_outcome"][wire]["auth"] == SAMPLES, stats
    assert stats["by_outcome"]["ok"] == SAMPLES
    assert stats["requests_total"] == 4 * SAMPLES

    rows = read_results(open_store(store), "wrong-key").to_pylist()
    assert len(rows) == 4 * SAMPLES
    for row in rows:
        if row["target"] == "good":
            assert row["error_kind"] is None and row["score_numeric"] == 1.0
            continue
        assert row["error_kind"] == "auth", row
        assert row["attempts"] == 1
        assert row["score_numeric"] is None and row["score_exact"] is None
        assert row["error"].startswith(f"{row['target']}: HTTP ")
        assert AUTH_MESSAGES[row["target"]] in row["error"], row["error"]
        assert "wrong" not in row["error"]

    targets = result.summary["targets"]
    assert targets["good"]["errors"] == 0
    assert targets["good"]["scorers"]["numeric"]["mean"] == 1.0
    for name in AUTH_MESSAGES:
        assert targets[name]["errors"] == SAMPLES
        assert targets[name]["error_kinds"] == {"auth": SAMPLES}
        assert targets[name]["scorers"]["numeric"]["rows_scored"] == 0


def test_a_missing_key_is_refused_before_anything_runs_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(RIGHT_ENV, raising=False)
    path = write_suite(
        tmp_path,
        samples=2,
        providers={"p": provider("anthropic", "http://127.0.0.1:9", RIGHT_ENV)},
        targets=[{"name": "t", "provider": "p", "model": "m"}],
    )
    with pytest.raises(SpecError) as caught:
        prepare_suite(path)
    assert caught.value.field == "providers.p.api_key_env"
    assert f"environment variable {RIGHT_ENV} is not set" in str(caught.value)


# --- no key anywhere: the CLI end to end ------------------------------------------------------


class _KeyEchoHandler(BaseHTTPRequestHandler):
    """Answers every POST 401 with the bearer key quoted in full, as a careless gateway might."""

    def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        key = self.headers.get("Authorization", "").removeprefix("Bearer ")
        body = json.dumps(
            {
                "error": {
                    "message": f"Incorrect API key provided: {key}",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            }
        ).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep stderr quiet
        pass


@pytest.fixture
def key_echo_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeyEchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def ray_tmpdir() -> Iterator[Path]:
    """A private, short RAY_TMPDIR: the run's Ray session logs land only here (and Unix socket
    paths under it must stay below about 107 bytes, which pytest's tmp_path may not)."""
    path = Path(tempfile.mkdtemp(prefix="ecray-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def secret_suite_providers(sim_url: str, echo_url: str) -> dict[str, dict[str, Any]]:
    """Every kind that sends the key, with the right key; a wrong key; a server echoing it."""
    right, wrong = "EVALCLUSTER_E2E_KEY", "EVALCLUSTER_E2E_WRONG_KEY"
    return {
        "openai": provider("openai", sim_url, right),
        "anthropic": provider("anthropic", sim_url, right),
        "gemini": provider("gemini", sim_url, right),
        "openrouter": {**provider("openai", sim_url, right), "kind": "openrouter"},
        "local": {**provider("openai", sim_url, right), "kind": "local"},
        "simulated": {
            **provider("gemini", sim_url, right),
            "kind": "simulated",
            "simulator": {"format": "gemini"},
        },
        "custom": {
            "kind": "custom",
            "api_key_env": right,
            "custom": {
                "url": f"{sim_url}/v1/chat/completions",
                "headers": {"Authorization": "Bearer {api_key}"},
                "body_template": {"model": "{model}", "messages": "{messages}"},
                "text_path": "choices.0.message.content",
            },
        },
        "wrong-openai": provider("openai", sim_url, wrong),
        "echoes-key": {"kind": "local", "base_url": f"{echo_url}/v1", "api_key_env": right},
    }


def files_under(*roots: Path) -> list[Path]:
    return [p for root in roots for p in sorted(root.rglob("*")) if p.is_file()]


def text_of(path: Path) -> str:
    """A file's bytes as text, and for Parquet (compressed) its decoded values as well."""
    raw = path.read_bytes().decode("utf-8", "replace")
    if path.suffix == ".parquet":
        raw += json.dumps(pq.ParquetFile(path).read().to_pylist(), default=str)
    return raw


def test_cli_run_leaves_no_key_in_store_mlflow_output_or_ray_logs(
    tmp_path, key_echo_server, ray_tmpdir
):
    secret = f"sk-evalcluster-SECRET-{uuid.uuid4().hex}"
    wrong = f"sk-evalcluster-SECRET-WRONG-{uuid.uuid4().hex}"
    work = tmp_path / "work"
    work.mkdir()
    with SimulatorThread(SimulatorConfig(api_keys=[secret])) as sim:
        providers = secret_suite_providers(sim.url, key_echo_server)
        targets = [{"name": name, "provider": name, "model": "sim-1"} for name in providers]
        suite = write_suite(
            tmp_path, samples=6, providers=providers, targets=targets, name="secrets"
        )
        env = {
            **os.environ,
            "EVALCLUSTER_E2E_KEY": secret,
            "EVALCLUSTER_E2E_WRONG_KEY": wrong,
            "RAY_TMPDIR": str(ray_tmpdir),
        }
        env.pop("RAY_ADDRESS", None)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "evalcluster.cli",
                "run",
                str(suite),
                "--quiet",
                "--store",
                str(work / "store"),
                "--tracking-uri",
                f"sqlite:///{work}/mlflow.db",
                "--run-id",
                "secrets",
            ],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        stats = sim.stats()
    assert done.returncode == 0, done.stderr[-3000:]
    assert stats["by_outcome"]["ok"] == 7 * 6  # the right key really was sent, and accepted
    assert stats["by_outcome"]["auth"] == 6

    rows = read_results(open_store(str(work / "store")), "secrets").to_pylist()
    errors = {r["target"]: r["error"] for r in rows if r["error_kind"] == "auth"}
    assert set(errors) == {"wrong-openai", "echoes-key"}
    assert "Incorrect API key provided" in errors["wrong-openai"]
    assert "Incorrect API key provided: ***" in errors["echoes-key"]  # echoed, then scrubbed

    ray_logs = list((ray_tmpdir / "ray").glob("session_*/logs"))
    assert ray_logs, f"no Ray session under {ray_tmpdir}"
    searched = files_under(work, *ray_logs)
    names = {p.name for p in searched}
    assert {"mlflow.db", "raylet.out", "gcs_server.out"} <= names, names
    assert any(p.suffix == ".parquet" for p in searched)
    # MLflow's artifacts (summary.json, the suite file) go under the working folder.
    artifacts = [p for p in searched if {"mlruns", "mlartifacts"} & set(p.parts)]
    assert any(p.name == "summary.json" for p in artifacts), names
    texts = {str(p): text_of(p) for p in searched}
    texts["stdout"], texts["stderr"] = done.stdout, done.stderr
    leaks = [where for where, text in texts.items() if secret in text or wrong in text]
    assert leaks == []
    # The searches can find what is there: the key variable's name is in the logged suite.
    assert any("EVALCLUSTER_E2E_KEY" in text_of(p) for p in artifacts)
