import io
import json
import signal
import socket
import subprocess
import sys

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
