import socket
import time

import httpx
import pytest

from evalcluster.simulator import SimulatorConfig, SimulatorProcess, SimulatorThread

from .wire import post

QUESTION = "What is 2 + 2?"


def _port_open(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, int(port))) == 0


def test_process_serves_over_http_with_its_config_and_terminates_on_exit(client):
    config = SimulatorConfig(api_keys=["proc-key"], accuracy=0.0)
    with SimulatorProcess(config) as sim:
        assert sim.url.startswith("http://127.0.0.1:")
        assert client.get(sim.url + "/healthz").status_code == 200
        assert post(client, "openai", sim.url, QUESTION, key="wrong").status_code == 401
        ok = post(client, "openai", sim.url, QUESTION, key="proc-key").json()
        assert ok["choices"][0]["message"]["content"] in ("3", "5")
        assert sim.stats()["by_outcome"]["auth"] == 1
        sim.reconfigure(error_500_rate=1.0)
        assert post(client, "openai", sim.url, QUESTION, key="proc-key").status_code == 500
        assert sim.reset_stats()["requests_total"] == 0
        pid, url = sim.pid, sim.url
    assert pid is not None and sim.pid is None
    assert not _port_open(url)


def test_thread_frees_its_port_on_exit_even_with_a_request_held(client):
    with SimulatorThread(SimulatorConfig(hang_s=30)) as sim:
        url = sim.url
        with pytest.raises(httpx.ReadTimeout):
            post(client, "openai", url, QUESTION, headers={"x-sim-force": "timeout"}, timeout=0.2)
        start = time.monotonic()
    assert time.monotonic() - start < 3
    assert not _port_open(url)


def test_thread_on_a_taken_port_raises():
    with SimulatorThread() as first:
        port = int(first.url.rsplit(":", 1)[1])
        with pytest.raises(OSError):
            SimulatorThread(port=port).start()


def test_thread_accepts_config_overrides_as_keywords():
    with SimulatorThread(SimulatorConfig(rpm=60), tpm=1000) as sim:
        live = sim.config()
        assert (live["rpm"], live["tpm"]) == (60, 1000)
        assert sim.server.config.tpm == 1000
