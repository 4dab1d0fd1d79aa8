"""Helpers of the tracking tests: an MLflow server handle, a CDP-driven Chromium, sample rows."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from websockets.sync.client import connect as ws_connect

CHROMIUM = Path("/usr/bin/chromium")
MLFLOW_BIN = Path(sys.executable).with_name("mlflow")
SERVER_START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_group(proc: subprocess.Popen) -> None:
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
        stop_group(self._proc)
        self._proc.stderr.close()


# -- a logged evaluation shared by the read-back and UI tests ------------------------------

SUITE_TEXT = """name: arithmetic
dataset: {path: examples/data/arithmetic.jsonl, id: id, input: question, target: answer}
prompt: "What is {question}? Answer with the number only."
scorers: [{type: numeric}, {type: exact}]
targets:
  - {name: sim-openai, provider: sim-openai, model: sim-1, params: {temperature: 0}}
  - {name: sim-anthropic, provider: sim-anthropic, model: sim-2, params: {temperature: 0}}
"""


def make_rows(target: str, count: int, *, fail_index: int | None = None) -> list[dict]:
    """Lake rows for `target`: sample i asks i+17; odd samples answer wrong; one may fail."""
    rows = []
    for i in range(count):
        failed = i == fail_index
        right = i % 2 == 0
        answer = str(i + 17 + 25)
        rows.append(
            {
                "run_id": "ignored-by-tracker",
                "target": target,
                "sample_id": f"s{i:03d}",
                "epoch": 0,
                "prompt": f"What is {i + 17}+25? Answer with the number only.",
                "reference": answer,
                "output": None if failed else (answer if right else "7"),
                "score_exact": None if failed else float(right),
                "score_numeric": None if failed else float(right),
                "error_kind": "rate_limited" if failed else None,
                "error": "HTTP 429: rate limited after 6 attempts" if failed else None,
                "input_tokens": 20 + i,
                "output_tokens": 2,
                "cost_usd": 0.0001,
                "latency_ms": 40.0 + i,
            }
        )
    return rows


def make_targets() -> list:
    from evalcluster.tracking import TargetResult

    common = {"latency_ms/p50": 42.0, "latency_ms/p95": 44.0}
    return [
        TargetResult(
            name="sim-openai",
            provider="sim-openai",
            model="sim-1",
            params={"temperature": 0, "max_tokens": 16, "stop": ["\n"]},
            sample_count=5,
            metrics={
                "exact/mean": 0.6,
                "exact/stderr": 0.2449,
                "numeric/mean": 0.6,
                "numeric/stderr": 0.2449,
                "tokens/input": 110,
                "tokens/output": 10,
                "cost_usd": 0.0005,
                "errors": 0,
                **common,
            },
        ),
        TargetResult(
            name="sim-anthropic",
            provider="sim-anthropic",
            model="sim-2",
            params={"temperature": 0.5, "api_key": "sk-ant-DO-NOT-LOG", "max_tokens": 16},
            sample_count=5,
            metrics={
                "exact/mean": 0.5,
                "exact/stderr": 0.2887,
                "numeric/mean": 0.5,
                "numeric/stderr": 0.2887,
                "tokens/input": 110,
                "tokens/output": 8,
                "cost_usd": 0.0004,
                "errors": 1,
                **common,
            },
        ),
    ]


@dataclass(frozen=True)
class LoggedEvaluation:
    parent_run_id: str
    run_id: str
    suite: str
    results_uri: str
    traced_per_target: int
