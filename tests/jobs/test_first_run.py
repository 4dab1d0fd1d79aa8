"""A new user's first command (README: `evalcluster run examples/arithmetic.yaml`), as they see
it: the real CLI in a subprocess on a pseudo-terminal, so that the progress bar is drawn live.
One run only: it starts a Ray of its own."""

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


def test_readme_first_command_shows_phases_and_no_library_banners(tmp_path):
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
    assert "starting Ray" in first_phases, frames[:10]
    assert not any("/?" in f for f in frames)
    # the last frame shows the final count, and so does the MLflow phase, before the summary
    counts = [COUNT.search(f) for f in frames if COUNT.search(f)]
    assert counts, frames
    done, total = counts[-1].groups()
    assert done == total == str(2 * SAMPLES), frames[-5:]
    mlflow_frames = [f for f in frames if f.startswith("writing MLflow")]
    assert mlflow_frames, frames[-10:]
    assert all(f"{total}/{total}" in f for f in mlflow_frames)
    # every line of the drawing is a frame of the bar or a line of ours, nothing from Ray/MLflow
    strays = [f for f in frames if "━" not in f and not f.startswith("stopping")]
    assert not strays, strays
