"""Fixtures for the tracking tests: a real `mlflow server` and a headless Chromium."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

CHROMIUM = Path("/usr/bin/chromium")
MLFLOW_BIN = Path(sys.executable).with_name("mlflow")
SERVER_START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop_group(proc: subprocess.Popen) -> None:
    """Stop `proc` and the workers it forked (it leads its own process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@dataclass(frozen=True)
class MlflowServer:
    url: str
    root: Path


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
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
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
            _stop_group(proc)
            log.close()


class Chromium:
    """A headless Chromium driven over the Chrome DevTools Protocol (one page)."""

    def __init__(self, profile_dir: Path, width: int = 1600, height: int = 1000):
        self._proc = subprocess.Popen(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile_dir}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._next_id = 0
        try:
            self._ws = ws_connect(self._page_ws_url(), max_size=64 * 1024 * 1024)
            self.call("Page.enable")
            self.call("Runtime.enable")
        except Exception:
            self.close()
            raise

    def _page_ws_url(self) -> str:
        # Chromium announces "DevTools listening on ws://127.0.0.1:<port>/devtools/browser/..".
        deadline = time.monotonic() + 30
        port = None
        while port is None:
            line = self._proc.stderr.readline().decode(errors="replace")
            if "DevTools listening on" in line:
                port = int(line.split("ws://127.0.0.1:")[1].split("/")[0])
            elif time.monotonic() > deadline or (not line and self._proc.poll() is not None):
                raise RuntimeError("chromium did not start its DevTools endpoint")
        pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
        return next(p["webSocketDebuggerUrl"] for p in pages if p["type"] == "page")

    def call(self, method: str, **params) -> dict:
        self._next_id += 1
        request_id = self._next_id
        self._ws.send(json.dumps({"id": request_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=60))
            if message.get("id") == request_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def wait_for_text(self, needles: Sequence[str], timeout_s: float = 45) -> str:
        """Page text once every needle is on the page; AssertionError naming missing ones."""
        deadline = time.monotonic() + timeout_s
        while True:
            text = self.text()
            missing = [n for n in needles if n not in text]
            if not missing:
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"not on the page: {missing}\n--- page text ---\n{text}")
            time.sleep(0.5)

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        ws = getattr(self, "_ws", None)
        if ws is not None:
            ws.close()
        _stop_group(self._proc)
        self._proc.stderr.close()


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
