"""`evalcluster serve` end to end: refuses to start keyless, serves, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx

from evalcluster.serve.auth import KEYS_ENV
from evalcluster.serve.launch import ALLOW_NO_AUTH_ENV

from .conftest import free_port

CLI = [sys.executable, "-m", "evalcluster.cli", "serve"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (KEYS_ENV, ALLOW_NO_AUTH_ENV)}
    return {**env, **extra}


def test_serve_without_keys_exits_2_naming_the_fix(tmp_path):
    done = subprocess.run(
        [*CLI, "--port", str(free_port())],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert KEYS_ENV in done.stderr and ALLOW_NO_AUTH_ENV in done.stderr


def test_serve_answers_until_sigterm_then_exits_0(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [*CLI, "--port", str(port), "--store", str(tmp_path / "store"), "--tracking-uri", "none"],
        cwd=tmp_path,
        env=_env(**{KEYS_ENV: "launch-test-key"}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 150
        while True:
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "the service did not come up"
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(1)
        assert httpx.get(f"{url}/v1/suites").status_code == 401
        authed = httpx.get(f"{url}/v1/suites", headers={"Authorization": "Bearer launch-test-key"})
        assert authed.json() == {"suites": []}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=90) == 0
        output = process.stdout.read()
        assert f"serving on http://127.0.0.1:{port}" in output
        assert "shutting down" in output
        assert "launch-test-key" not in output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
