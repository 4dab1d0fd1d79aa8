"""Run a simulator for the length of a ``with`` block: in a thread, or in a subprocess.

Both handles share one small admin client (``stats``, ``reset_stats``, ``reconfigure``) that
talks to the server over HTTP like any other client would.
"""

from __future__ import annotations

import asyncio
import json
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from evalcluster.simulator.cli import LISTENING
from evalcluster.simulator.config import SimulatorConfig
from evalcluster.simulator.server import SimulatorServer
from evalcluster.simulator.serving import RunningServer, new_event_loop, start_server

_URL = re.compile(re.escape(LISTENING) + r" (http://\S+)")


class _AdminClient:
    """Admin calls over HTTP; subclasses set `url` once the server listens."""

    url: str

    def stats(self) -> dict[str, Any]:
        """``GET /stats``: counts by outcome and wire format, tokens served (see `Stats`)."""
        return self._call("GET", "/stats")

    def reset_stats(self) -> dict[str, Any]:
        """``POST /stats/reset``: zero the counters; returns the zeroed stats."""
        return self._call("POST", "/stats/reset", {})

    def reconfigure(self, **changes: Any) -> dict[str, Any]:
        """``POST /admin/config``: change the live config; returns it (keys redacted).
        Raises ValueError naming the field when a change is invalid."""
        return self._call("POST", "/admin/config", changes)

    def config(self) -> dict[str, Any]:
        """``GET /admin/config``: the live config, API keys redacted."""
        return self._call("GET", "/admin/config")

    def _call(self, method: str, path: str, payload: Any = None) -> dict[str, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = json.loads(exc.read() or b"{}").get("error", exc.reason)
            raise ValueError(f"simulator {method} {path}: {detail}") from None


def _config(config: SimulatorConfig | None, overrides: dict[str, Any]) -> SimulatorConfig:
    base = config or SimulatorConfig()
    return base.updated(overrides) if overrides else base


class SimulatorThread(_AdminClient):
    """The simulator on its own event loop in a daemon thread, on 127.0.0.1 and a free port.

    ``with SimulatorThread(SimulatorConfig(rpm=600)) as sim: httpx.get(sim.url + "/healthz")``
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        **overrides: Any,
    ):
        self._config = _config(config, overrides)
        self._host, self._port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._running: RunningServer | None = None

    @property
    def server(self) -> SimulatorServer:
        """The live server object (same process: tests may read its state directly)."""
        if self._running is None:
            raise RuntimeError("the simulator is not running")
        return self._running.server

    def start(self) -> SimulatorThread:
        """Start serving; returns once the socket listens. Raises what binding raised."""
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._running = loop.run_until_complete(
                    start_server(self._config, self._host, self._port)
                )
            except BaseException as exc:  # handed to the starting thread below
                failure.append(exc)
                loop.close()
                ready.set()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._shutdown())
                loop.close()

        self._thread = threading.Thread(target=run, name="evalcluster-simulator", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            raise failure[0]
        self._loop = loop
        self.url = self._running.url
        return self

    async def _shutdown(self) -> None:
        if self._running is not None:
            await self._running.close()
        current = asyncio.current_task()
        leftover = [t for t in asyncio.all_tasks() if t is not current]
        for task in leftover:
            task.cancel()
        await asyncio.gather(*leftover, return_exceptions=True)

    def stop(self) -> None:
        """Stop serving, cancel held requests and join the thread."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop = self._thread = None

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class SimulatorProcess(_AdminClient):
    """The simulator as a subprocess, ``python -m evalcluster.simulator``.

    The config (API keys included) goes to the child on stdin, never on its command line.
    `start` waits until ``/healthz`` answers; leaving the block terminates the process.
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout_s: float = 30.0,
        **overrides: Any,
    ):
        self._config = _config(config, overrides)
        self._host, self._port = host, port
        self._startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self) -> SimulatorProcess:
        """Start the process; returns once ``/healthz`` answers. Raises RuntimeError if not."""
        cmd = [sys.executable, "-m", "evalcluster.simulator", "--config-stdin"]
        cmd += ["--host", self._host, "--port", str(self._port)]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert self._proc.stdin is not None
            self._proc.stdin.write(self._config.model_dump_json())
            self._proc.stdin.close()
            self.url = self._read_url()
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _read_url(self) -> str:
        lines: queue.Queue[str] = queue.Queue()
        stdout = self._proc.stdout
        reader = threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True)
        reader.start()
        try:
            line = lines.get(timeout=self._startup_timeout_s)
        except queue.Empty:
            raise RuntimeError("the simulator process did not start in time") from None
        match = _URL.search(line)
        if match is None:
            code = self._proc.poll()
            raise RuntimeError(f"the simulator process did not start (exit code {code})")
        return match.group(1)

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self._startup_timeout_s
        while True:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the simulator at {self.url} did not become healthy")
            time.sleep(0.05)

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after 5 s) and close its pipe."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
