"""API keys through a whole run: a wrong key fails fast, and no key is ever written anywhere.

One `evalcluster run` subprocess, as a user runs it, with distinctive key values in its
environment: every kind that sends a key uses the right one, three wire formats get a wrong
one (the simulator accepts only the right key, so each answers its real auth error), and one
server quotes the key it got back in its error. Then everything the run left behind (store,
MLflow database and artifacts, output, Ray's session logs) is searched for the key values.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from evalcluster.errors import SpecError
from evalcluster.jobs.mlflow_worker import read_mlflow_status
from evalcluster.jobs.prepare import prepare_suite
from evalcluster.simulator import SimulatorConfig, SimulatorThread
from evalcluster.store.fs import open_store
from evalcluster.store.lake import read_results
from evalcluster.store.manifest import read_manifest, read_summary
from tests.conftest import write_suite

RIGHT_ENV, WRONG_ENV = "EVALCLUSTER_E2E_KEY", "EVALCLUSTER_E2E_WRONG_KEY"
SAMPLES = 6
RUN_ID = "secrets"
# What each wire format's provider says to a key it does not know (see simulator/formats).
AUTH_MESSAGES = {
    "bad-openai": "Incorrect API key provided",
    "bad-anthropic": "invalid x-api-key",
    "bad-gemini": "API key not valid",
}


def provider(kind: str, url: str, key_env: str) -> dict[str, Any]:
    base_url = f"{url}/v1" if kind in ("openai", "openrouter", "local") else url
    return {
        "kind": kind,
        "base_url": base_url,
        "api_key_env": key_env,
        "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
    }


def suite_providers(sim_url: str, echo_url: str) -> dict[str, dict[str, Any]]:
    """Every kind that sends a key, with the right key; three wrong keys; a key echoer."""
    return {
        "openai": provider("openai", sim_url, RIGHT_ENV),
        "anthropic": provider("anthropic", sim_url, RIGHT_ENV),
        "gemini": provider("gemini", sim_url, RIGHT_ENV),
        "openrouter": provider("openrouter", sim_url, RIGHT_ENV),
        "local": provider("local", sim_url, RIGHT_ENV),
        "simulated": {
            **provider("simulated", sim_url, RIGHT_ENV),
            "simulator": {"format": "gemini"},
        },
        "custom": {
            "kind": "custom",
            "api_key_env": RIGHT_ENV,
            "custom": {
                "url": f"{sim_url}/v1/chat/completions",
                "headers": {"Authorization": "Bearer {api_key}"},
                "body_template": {"model": "{model}", "messages": "{messages}"},
                "text_path": "choices.0.message.content",
            },
        },
        "bad-openai": provider("openai", sim_url, WRONG_ENV),
        "bad-anthropic": provider("anthropic", sim_url, WRONG_ENV),
        "bad-gemini": provider("gemini", sim_url, WRONG_ENV),
        "echoes-key": provider("local", echo_url, RIGHT_ENV),
    }


GOOD = ("openai", "anthropic", "gemini", "openrouter", "local", "simulated", "custom")


class _KeyEchoHandler(BaseHTTPRequestHandler):
    """Answers every POST 401 quoting the bearer key in full, as a careless gateway might."""

    def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        key = self.headers.get("Authorization", "").removeprefix("Bearer ")
        error = {
            "message": f"Incorrect API key provided: {key}",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
        body = json.dumps({"error": error}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep stderr quiet
        pass


@contextmanager
def key_echo_server() -> Iterator[str]:
    """`_KeyEchoHandler` on 127.0.0.1 and a free port, for the length of the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeyEchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@dataclass
class CliRun:
    done: subprocess.CompletedProcess
    stats: dict[str, Any]  # the simulator's, after the run
    work: Path  # the working folder: store, MLflow database and artifacts
    ray_dir: Path  # the run's RAY_TMPDIR
    keys: tuple[str, str]  # the right and the wrong key values
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    status: str


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> Iterator[CliRun]:
    """`evalcluster run` once, in a subprocess with its own embedded Ray."""
    tmp_path = tmp_path_factory.mktemp("secrets")
    work = tmp_path / "work"
    work.mkdir()
    # A private, short RAY_TMPDIR: this run's Ray session logs land only there (and the Unix
    # socket paths under it must stay below ~107 bytes, which pytest's tmp_path may not).
    ray_dir = Path(tempfile.mkdtemp(prefix="ecray-", dir="/tmp"))
    right = f"sk-evalcluster-SECRET-{uuid.uuid4().hex}"
    wrong = f"sk-evalcluster-SECRET-WRONG-{uuid.uuid4().hex}"
    try:
        with SimulatorThread(SimulatorConfig(api_keys=[right])) as sim, key_echo_server() as echo:
            providers = suite_providers(sim.url, echo)
            # One model per target: the response cache keys on provider kind and model, so
            # two targets asking one kind the same thing would share answers, not call.
            targets = [{"name": n, "provider": n, "model": f"m-{n}"} for n in providers]
            suite = write_suite(
                tmp_path, samples=SAMPLES, providers=providers, targets=targets, name="secrets"
            )
            env = {**os.environ, RIGHT_ENV: right, WRONG_ENV: wrong, "RAY_TMPDIR": str(ray_dir)}
            env.pop("RAY_ADDRESS", None)
            command = [sys.executable, "-m", "evalcluster.cli", "run", str(suite), "--quiet"]
            command += ["--store", str(work / "store"), "--run-id", RUN_ID]
            command += ["--tracking-uri", f"sqlite:///{work}/mlflow.db"]
            command += ["--executor", "ray"]  # Ray's own logs are searched too
            done = subprocess.run(
                command, cwd=work, env=env, capture_output=True, text=True, timeout=300
            )
            stats = sim.stats()
        assert done.returncode == 0, done.stderr[-3000:]
        store = open_store(str(work / "store"))
        # MLflow is written by a worker process the command does not wait for
        deadline = time.monotonic() + 120
        while (read_mlflow_status(store, RUN_ID) or {}).get("status") in (None, "running"):
            assert time.monotonic() < deadline, read_mlflow_status(store, RUN_ID)
            time.sleep(0.2)
        rows = read_results(store, RUN_ID).to_pylist()
        summary = read_summary(store, RUN_ID) or {}
        status = read_manifest(store, RUN_ID).status
        yield CliRun(done, stats, work, ray_dir, (right, wrong), rows, summary, status)
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)


def test_a_wrong_key_fails_each_sample_once_with_auth_and_the_run_still_finishes(cli_run):
    assert cli_run.status == "finished"
    # One request per sample: an auth error is never retried and never trips the breaker.
    for wire in ("openai", "anthropic", "gemini"):
        assert cli_run.stats["by_format_outcome"][wire]["auth"] == SAMPLES, cli_run.stats
    assert cli_run.stats["by_outcome"]["ok"] == len(GOOD) * SAMPLES  # the right key works
    for row in cli_run.rows:
        if row["target"] in GOOD:
            assert row["error_kind"] is None and row["score_numeric"] == 1.0, row
        elif row["target"] in AUTH_MESSAGES:
            assert row["error_kind"] == "auth" and row["attempts"] == 1, row
            assert row["score_numeric"] is None and row["score_exact"] is None
            assert row["error"].startswith(f"{row['target']}: HTTP ")
            assert AUTH_MESSAGES[row["target"]] in row["error"], row["error"]


def test_the_summary_counts_auth_errors_and_scores_only_answers(cli_run):
    targets = cli_run.summary["targets"]
    for name in GOOD:
        assert targets[name]["errors"] == 0
        assert targets[name]["scorers"]["numeric"]["mean"] == 1.0
    for name in (*AUTH_MESSAGES, "echoes-key"):
        assert targets[name]["errors"] == SAMPLES
        assert targets[name]["error_kinds"] == {"auth": SAMPLES}
        assert targets[name]["scorers"]["numeric"]["rows_scored"] == 0
    assert "bad-gemini" in cli_run.done.stdout  # the printed table reports it too


def test_a_key_quoted_back_by_the_provider_is_scrubbed_from_the_error(cli_run):
    errors = [r["error"] for r in cli_run.rows if r["target"] == "echoes-key"]
    assert len(errors) == SAMPLES
    for error in errors:
        assert error.startswith("echoes-key: HTTP 401: Incorrect API key provided: ***"), error


def files_under(*roots: Path) -> list[Path]:
    return [p for root in roots for p in sorted(root.rglob("*")) if p.is_file()]


def text_of(path: Path) -> str:
    """A file's bytes as text, and for Parquet (compressed) its decoded values as well."""
    raw = path.read_bytes().decode("utf-8", "replace")
    if path.suffix == ".parquet":
        raw += json.dumps(pq.ParquetFile(path).read().to_pylist(), default=str)
    return raw


def test_no_key_is_in_the_store_mlflow_output_or_ray_logs(cli_run):
    ray_logs = list((cli_run.ray_dir / "ray").glob("session_*/logs"))
    assert ray_logs, f"no Ray session under {cli_run.ray_dir}"
    searched = files_under(cli_run.work, *ray_logs)
    names = {p.name for p in searched}
    assert {"mlflow.db", "raylet.out", "gcs_server.out"} <= names, names
    assert any(p.suffix == ".parquet" for p in searched)
    # MLflow's artifacts (summary.json, the suite file) land under the working folder.
    artifacts = [p for p in searched if {"mlruns", "mlartifacts"} & set(p.parts)]
    assert any(p.name == "summary.json" for p in artifacts), names
    texts = {str(p): text_of(p) for p in searched}
    texts["stdout"], texts["stderr"] = cli_run.done.stdout, cli_run.done.stderr
    leaks = [where for where, text in texts.items() if any(k in text for k in cli_run.keys)]
    assert leaks == []
    # The search finds what is there: the key variable's name is in the logged suite, and the
    # scrubbed error is in the (compressed) Parquet files.
    assert any(RIGHT_ENV in text_of(p) for p in artifacts)
    assert any("provided: ***" in texts[str(p)] for p in searched if p.suffix == ".parquet")


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
