import io
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from evalcluster.simulator.cli import LISTENING, main


def test_command_line_prints_its_url_applies_options_and_stops_on_sigterm():
    cmd = [sys.executable, "-m", "evalcluster.simulator", "--port", "0", "--latency-ms", "5"]
    cmd += ["--rpm", "120", "--tpm", "9000", "--error-rate", "0.2", "--accuracy", "0.5"]
    cmd += ["--seed", "7", "--jitter-ms", "2", "--api-key", "k1", "--api-key", "k2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith(LISTENING + " http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        live = httpx.get(url + "/admin/config").json()
        assert live["latency_ms"] == 5 and live["jitter_ms"] == 2
        assert (live["rpm"], live["tpm"], live["seed"]) == (120, 9000, 7)
        assert (live["error_rate"], live["accuracy"]) == (0.2, 0.5)
        assert live["api_keys"] == "<2 keys>"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_invalid_options_exit_2_naming_the_field(capsys):
    assert main(["--accuracy", "3", "--port", "0"]) == 2
    assert "accuracy" in capsys.readouterr().err


def test_config_on_stdin_is_the_base_and_flags_override_it(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps({"error_500_rate": 0.9})))
    assert main(["--config-stdin", "--error-rate", "0.5", "--port", "0"]) == 2
    assert "add up" in capsys.readouterr().err  # 0.9 + 0.5/4 per fault: the base was read


def test_a_port_in_use_exits_1():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--port", str(port)]) == 1


def test_evalcluster_simulate_console_script_serves_until_terminated():
    """`evalcluster simulate` (the installed console script, as a user types it) runs the
    simulator: it answers HTTP on the port given, then stops on SIGTERM."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = str(Path(sys.executable).parent / "evalcluster")
    proc = subprocess.Popen(
        [script, "simulate", "--port", str(port), "--api-key", "k1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"exited {proc.returncode}: {proc.stderr.read()}"
            try:
                if httpx.get(url + "/healthz", timeout=2).json() == {"status": "ok"}:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "no answer within 60 s"
            time.sleep(0.2)
        answer = httpx.post(
            url + "/v1/chat/completions",
            headers={"Authorization": "Bearer k1"},
            json={"model": "sim-1", "messages": [{"role": "user", "content": "What is 2+3?"}]},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"]
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
