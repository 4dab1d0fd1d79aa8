"""A new user's first command (README: `evalcluster run examples/arithmetic.yaml`), as they see
it: the real CLI in a subprocess on a pseudo-terminal, so that the progress bar is drawn live.
One run per executor (`--executor ray` starts a Ray of its own)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

from mlflow import MlflowClient

from evalcluster.jobs.mlflow_worker import read_mlflow_status
from evalcluster.store.fs import open_store
from evalcluster.store.manifest import read_manifest
from tests.conftest import REPO

SAMPLES = 16  # two targets: 32 rows
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
COUNT = re.compile(r"(\d+)/(\d+) +\$")  # "32/32 $0.0003": the bar's count, not a table's cell


def _run_on_a_terminal(args: list[str], cwd, timeout: float = 240) -> tuple[int, str]:
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(args, cwd=cwd, stdin=child, stdout=child, stderr=child, env=env)
    os.close(child)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(main, 65536)
            except OSError:  # the child side is closed: the command is done
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main)
    return code, b"".join(chunks).decode("utf-8", "replace")


# What the display says before there is anything to count, on each executor.
FIRST_PHASE = {"ray": "starting Ray", "local": "starting providers"}


def test_readme_first_command_shows_phases_and_no_library_banners(tmp_path, cli_executor):
    code, raw = _run_on_a_terminal(
        [
            sys.executable,
            "-m",
            "evalcluster.cli",
            "run",
            str(REPO / "examples" / "arithmetic.yaml"),
            "--max-samples",
            str(SAMPLES),
            "--store",
            str(tmp_path / "store"),
            "--tracking-uri",
            f"sqlite:///{tmp_path}/mlflow.db",
            "--executor",
            cli_executor,
        ],
        cwd=tmp_path,
    )
    text = ANSI.sub("", raw)
    assert code == 0, text[-3000:]
    # everything the bar drew, frame by frame, up to the summary table
    bar_part = re.split(r"run \S+: finished", text, maxsplit=1)[0]
    frames = [f.strip() for f in re.split(r"[\r\n]+", bar_part) if f.strip()]

    assert "Creating initial MLflow database tables" not in text
    assert "Updating database tables" not in text
    assert "Token authentication" not in text
    assert "token-auth" not in text

    # the phase is shown before any count is known
    first_phases = [f.split("━")[0].strip() for f in frames if not COUNT.search(f)]
    assert FIRST_PHASE[cli_executor] in first_phases, frames[:10]
    assert not any("/?" in f for f in frames)
    # the last frame shows the final count, before the summary
    counts = [COUNT.search(f) for f in frames if COUNT.search(f)]
    assert counts, frames
    done, total = counts[-1].groups()
    assert done == total == str(2 * SAMPLES), frames[-5:]
    # every line of the drawing is a frame of the bar or a line of ours, nothing from Ray/MLflow
    strays = [f for f in frames if "━" not in f and not f.startswith("stopping")]
    assert not strays, strays

    # MLflow is logged by a process of its own that the command does not wait for: the
    # result and the manifest say so, and the run lands in MLflow whole after the exit
    assert "mlflow: logging in the background" in text
    run_id = re.search(r"run (\S+): finished", text).group(1)
    store = open_store(str(tmp_path / "store"))
    assert read_manifest(store, run_id).mlflow_logging == "detached"
    deadline = time.monotonic() + 120
    while (read_mlflow_status(store, run_id) or {}).get("status") in (None, "running"):
        assert time.monotonic() < deadline, read_mlflow_status(store, run_id)
        time.sleep(0.2)
    status = read_mlflow_status(store, run_id)
    assert status["status"] == "logged", status
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    parent = client.get_run(status["mlflow_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["evalcluster.run_id"] == run_id
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
    )
    assert {c.data.tags["evalcluster.target"] for c in children} == {"sim-strong", "sim-weak"}
    assert all(c.info.status == "FINISHED" for c in children)
    traces = client.search_traces(locations=[parent.info.experiment_id], max_results=1000)
    assert len(traces) == 2 * SAMPLES
