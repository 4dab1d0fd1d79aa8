"""The cluster path: a head and two workers started with `ray start`, Ray's token
authentication on, suites submitted with `evalcluster submit`, a run stopped with Ray's job
stop and resumed."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from mlflow import MlflowClient

from evalcluster.simulator import SimulatorConfig, SimulatorThread
from evalcluster.store.fs import open_store
from evalcluster.store.lake import list_shards, read_results
from evalcluster.store.manifest import read_manifest
from tests.conftest import openai_provider, write_suite

pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """`ray start` head + 2 workers; yields (dashboard address, environment for clients)."""
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths are limited
    port, dashboard = free_port(), free_port()
    bin_dir = str(Path(sys.executable).parent)  # the job's `python` is the cluster's: ours
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "EVALCLUSTER_TEST_KEY": "sk-test-not-a-real-key-0123456789",
        # give a stopped driver time to mark its run KILLED before Ray kills it
        "RAY_JOB_STOP_WAIT_TIME_S": "30",
    }
    start = [RAY, "start", "--disable-usage-stats"]

    def own_ports() -> list[str]:  # Ray's fixed default ports clash with any other Ray here
        return [
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
        ]

    head = [
        *start,
        *own_ports(),
        "--head",
        f"--port={port}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard}",
        "--num-cpus=1",
        f"--temp-dir={temp}",
    ]
    subprocess.run(head, env=env, check=True, capture_output=True, timeout=120)
    try:
        for _ in range(2):
            worker = [*start, *own_ports(), f"--address=127.0.0.1:{port}", "--num-cpus=2"]
            subprocess.run(worker, env=env, check=True, capture_output=True, timeout=120)
        yield f"http://127.0.0.1:{dashboard}", env
    finally:
        stop_cluster(temp, port)


def stop_cluster(temp: str, port: int) -> None:
    """Stop this cluster's processes only (`ray stop` would stop every Ray on the machine)."""
    marks = (temp, f"127.0.0.1:{port}")
    ours = [
        p
        for p in psutil.process_iter(["cmdline"])
        if any(m in " ".join(p.info["cmdline"] or ()) for m in marks)
    ]
    for proc in ours:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(ours, timeout=15)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    shutil.rmtree(temp, ignore_errors=True)


def submit(work: Path, address: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "evalcluster.cli",
            "submit",
            "suite.yaml",
            "--address",
            address,
            "--working-dir",
            ".",
            "--store",
            str(work / "store"),
            "--tracking-uri",
            f"sqlite:///{work}/mlflow.db",
            *args,
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )


def make_suite(work: Path, sim_url: str, samples: int, concurrency: int) -> None:
    path = write_suite(
        work,
        samples=samples,
        shard_size=8,
        name="cluster",
        providers={"p": openai_provider(sim_url, max_concurrency=concurrency)},
        targets=[{"name": "a", "provider": "p", "model": "m", "params": {"temperature": 0}}],
    )
    path.rename(work / "suite.yaml")


def ray_job(
    env: dict, *args: str, check: bool = False, timeout: int = 60
) -> subprocess.CompletedProcess:
    """`ray job <args>` through Ray's own CLI, which reads the token from `env`."""
    return subprocess.run(
        [RAY, "job", *args], env=env, check=check, capture_output=True, text=True, timeout=timeout
    )


def test_a_client_without_the_token_is_refused(cluster):
    address, env = cluster
    bare = {k: v for k, v in env.items() if k not in ("RAY_AUTH_TOKEN",)}
    bare["HOME"] = tempfile.mkdtemp()  # no ~/.ray/auth_token either
    listed = ray_job(bare, "list", "--address", address)
    assert listed.returncode != 0


def test_submit_follow_runs_the_suite_on_the_cluster(cluster, tmp_path):
    address, env = cluster
    with SimulatorThread(SimulatorConfig()) as sim:
        make_suite(tmp_path, sim.url, samples=40, concurrency=16)
        done = submit(tmp_path, address, env, "--run-id", "on-cluster", "--follow")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.splitlines()[0].startswith("raysubmit_")  # the job id comes first
    rows = read_results(open_store(str(tmp_path / "store")), "on-cluster").to_pylist()
    assert len(rows) == 40 and {r["score_numeric"] for r in rows} == {1.0}


def job_status(address: str, env: dict, job_id: str) -> str:
    """The job's status through Ray's CLI."""
    done = ray_job(env, "status", "--address", address, job_id)
    said = done.stdout + done.stderr  # Ray's CLI logs to stderr
    if "was stopped" in said:
        return "STOPPED"
    found = re.search(r"Status for job '[^']+': (\w+)", said)
    if found:
        return found.group(1)
    if "failed" in said:
        return "FAILED"
    return "UNKNOWN"


def test_job_stop_marks_the_run_killed_and_it_resumes(cluster, tmp_path):
    address, env = cluster
    store = open_store(str(tmp_path / "store"))
    with SimulatorThread(SimulatorConfig(latency_ms=250)) as sim:
        make_suite(tmp_path, sim.url, samples=80, concurrency=2)
        started = submit(tmp_path, address, env, "--run-id", "stopped")
        assert started.returncode == 0, started.stderr[-3000:]
        job_id = started.stdout.strip().splitlines()[0]
        deadline = time.monotonic() + 180
        while not (
            store.exists("runs/run_id=stopped/_manifest.json")
            and len(list_shards(store, "stopped")) >= 2
        ):
            if time.monotonic() > deadline:
                logs = ray_job(env, "logs", "--address", address, job_id)
                raise AssertionError(f"no shard committed in time: {logs.stdout[-3000:]}")
            time.sleep(0.5)
        ray_job(env, "stop", "--address", address, job_id, check=True, timeout=120)
        while job_status(address, env, job_id) not in ("STOPPED", "FAILED"):
            assert time.monotonic() < deadline + 120
            time.sleep(0.5)
        manifest = read_manifest(store, "stopped")
        assert manifest.status == "killed", manifest.error
        kept = read_results(store, "stopped").num_rows
        assert 0 < kept < 80
        mlflow = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
        logs = ray_job(env, "logs", "--address", address, job_id).stdout
        assert manifest.mlflow_run_id, logs[-3000:]
        killed = mlflow.get_run(manifest.mlflow_run_id)
        assert killed.info.status == "KILLED"

        resumed = submit(tmp_path, address, env, "--run-id", "stopped", "--follow")
        assert resumed.returncode == 0, resumed.stdout[-3000:]
    rows = read_results(store, "stopped").to_pylist()
    assert sorted(r["sample_id"] for r in rows) == sorted({r["sample_id"] for r in rows})
    assert len(rows) == 80
    assert read_manifest(store, "stopped").status == "finished"
