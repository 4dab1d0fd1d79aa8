"""Which executor a run gets, and what the in-process one does differently from Ray: no
endpoint for a run served from the cache, and a cancel that stops its threads' shards."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from evalcluster.errors import SpecError
from evalcluster.jobs import local_executor
from evalcluster.jobs.driver import run_suite
from evalcluster.jobs.executors import choose_executor
from evalcluster.jobs.options import RunOptions
from evalcluster.jobs.prepare import prepare_suite
from evalcluster.simulator import SimulatorConfig, SimulatorThread
from evalcluster.store.fs import open_store
from evalcluster.store.lake import list_shards, read_results
from evalcluster.store.manifest import read_manifest
from tests.conftest import openai_provider, write_suite


def test_auto_is_local_without_an_address_or_a_running_ray():
    assert choose_executor("auto", address=None) == "local"
    assert choose_executor("auto", address="auto") == "ray"
    assert choose_executor("ray", address=None) == "ray"
    assert choose_executor("local", address=None) == "local"


def test_local_cannot_join_a_cluster_and_unknown_names_are_refused():
    with pytest.raises(SpecError, match="--executor: --executor local runs in this process"):
        choose_executor("local", address="10.0.0.1:6379")
    with pytest.raises(SpecError, match="unknown executor 'threads'"):
        choose_executor("threads", address=None)


def test_a_run_served_wholly_from_the_cache_opens_no_endpoint(tmp_path, monkeypatch):
    opened: list[str] = []
    real = local_executor.LocalEndpoints.endpoint

    def spy(self, name):
        opened.append(name)
        return real(self, name)

    monkeypatch.setattr(local_executor.LocalEndpoints, "endpoint", spy)
    with SimulatorThread(SimulatorConfig(accuracy=1.0)) as sim:
        path = write_suite(
            tmp_path,
            samples=20,
            providers={"p": openai_provider(sim.url)},
            targets=[{"name": "a", "provider": "p", "model": "m", "params": {"temperature": 0}}],
        )
        suite = prepare_suite(path)
        store = str(tmp_path / "store")
        paid = run_suite(suite, RunOptions(store=store, tracking_uri=None, run_id="paid"))
        assert paid.status == "finished" and opened == ["p"] * 3  # one lookup per shard
    # the simulator is gone: a run that needed the provider could not finish
    opened.clear()
    cached = run_suite(suite, RunOptions(store=store, tracking_uri=None, run_id="cached"))
    assert cached.status == "finished"
    assert opened == []
    rows = read_results(open_store(store), "cached").to_pylist()
    assert len(rows) == 20 and all(r["cache_hit"] for r in rows)


def test_ctrl_c_abandons_the_shards_in_flight_and_commits_none_of_them(tmp_path):
    with SimulatorThread(SimulatorConfig(latency_ms=400)) as sim:
        path = write_suite(
            tmp_path,
            samples=64,
            providers={"p": openai_provider(sim.url, max_concurrency=2)},
            targets=[{"name": "a", "provider": "p", "model": "m"}],
        )
        suite = prepare_suite(path)
        store = open_store(str(tmp_path / "store"))

        def interrupt_after_the_first_commit() -> None:
            deadline = time.monotonic() + 60
            while not list_shards(store, "c") and time.monotonic() < deadline:
                time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: the driver's handler hears it

        threading.Thread(target=interrupt_after_the_first_commit, daemon=True).start()
        result = run_suite(
            suite, RunOptions(store=str(tmp_path / "store"), tracking_uri=None, run_id="c")
        )
        requests = sim.stats()["requests_total"]
    assert result.status == "killed"
    assert requests < 64  # the rest was never sent
    manifest = read_manifest(store, "c")
    committed = sum(len(s) for s in manifest.shards.values())
    assert manifest.status == "killed" and 1 <= committed < 8
    # what is committed is whole shards, recorded in the manifest; nothing half-written
    assert len(list_shards(store, "c")) == committed
    assert read_results(store, "c").num_rows == committed * 8
