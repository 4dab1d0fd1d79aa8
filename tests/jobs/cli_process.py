"""`evalcluster run` as a process of its own, for the tests that kill a driver (SIGKILL, like a
lost machine) or stop it, then look at what it left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def start_cli_run(
    suite: Path, work: Path, run_id: str, *extra: str, tracking_uri: str = "none"
) -> subprocess.Popen:
    """`evalcluster run <suite> --run-id <run_id> --quiet` with its store at ``work/store``, in
    a process group of its own (killing the group takes its simulators and embedded Ray too);
    `extra` goes on the end of the command line."""
    return subprocess.Popen(
        [sys.executable, "-m", "evalcluster.cli", "run", str(suite), "--run-id", run_id,
         "--store", str(work / "store"), "--tracking-uri", tracking_uri, "--quiet", *extra],
        cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the run's whole process group and reap it."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def wait_while_running(
    proc: subprocess.Popen,
    done: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    every_s: float = 0.05,
) -> None:
    """Poll `done` until it is true. Fails with the run's stderr if `proc` exits first, or
    saying `what` did not happen after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, f"{what} not in time"
        time.sleep(every_s)
