"""An in-process run (`--executor local`) never imports Ray: `import ray` is 0.2-0.4 s of every
start (evalcluster/lazy_ray.py). Checked on a real run over HTTP with `python -X importtime`,
which lists every module the process imported, up to its exit."""

from __future__ import annotations

import subprocess
import sys

import pytest

from evalcluster.simulator import SimulatorConfig, SimulatorThread
from evalcluster.store.fs import open_store
from evalcluster.store.lake import read_results
from evalcluster.store.manifest import read_manifest
from tests.conftest import openai_provider, write_suite

SAMPLES = 40


def imported_modules(stderr: str) -> set[str]:
    """Module names from `-X importtime` lines ("import time: self | cumulative | name")."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def run_cli(args: list[str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "evalcluster.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def sim():
    with SimulatorThread(SimulatorConfig(latency_ms=5)) as sim:
        yield sim


def test_local_run_and_its_cached_rerun_never_import_ray(tmp_path, sim):
    suite = write_suite(
        tmp_path,
        samples=SAMPLES,
        shard_size=16,
        providers={"p": openai_provider(sim.url, max_concurrency=8)},
        targets=[{"name": "a", "provider": "p", "model": "m", "params": {"temperature": 0}}],
    )
    store = tmp_path / "store"
    common = ["--store", str(store), "--tracking-uri", "none", "--quiet", "--executor", "local"]
    for run_id in ("paid", "cached"):
        done = run_cli(["run", str(suite), "--run-id", run_id, *common], tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        modules = imported_modules(done.stderr)
        # the run did happen in this process: the shard code, endpoints and Parquet were used
        assert {"evalcluster.jobs.shard", "evalcluster.actors.provider", "pyarrow"} <= modules
        assert not {m for m in modules if m == "ray" or m.startswith("ray.")}, run_id
        assert read_manifest(open_store(str(store)), run_id).status == "finished"
        assert read_results(open_store(str(store)), run_id).num_rows == SAMPLES
    assert sim.stats()["requests_total"] == SAMPLES  # the second run came from the cache


def test_the_same_modules_import_ray_when_asked_for_it(tmp_path):
    """The check above can fail: `--executor ray` imports it (and needs no run to show it)."""
    done = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-c",
            "import evalcluster.jobs.shard as s; s.evaluate_shard.options",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ray" in imported_modules(done.stderr)


def test_metrics_recorded_without_ray_are_dropped_without_importing_it():
    """An in-process endpoint records its metrics as on Ray; with no Ray there is no agent to
    export them, so they go nowhere, and recording them does not import Ray."""
    code = (
        "import sys\n"
        "from evalcluster.actors import metrics\n"
        "metrics.requests_total().inc(3, tags={'provider': 'p', 'outcome': 'ok'})\n"
        "metrics.request_latency_seconds().observe(0.1, tags={'provider': 'p'})\n"
        "metrics.breaker_state().set(1, tags={'provider': 'p'})\n"
        "from evalcluster.actors.provider import ProviderActor, _was_reconstructed\n"
        "assert isinstance(ProviderActor.__wrapped__, type)\n"
        "assert _was_reconstructed() is False\n"
        "print('ray' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "False"
