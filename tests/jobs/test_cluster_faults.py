"""Runs on a multi-node Ray cluster on this machine survive losing a worker node."""

from __future__ import annotations

import threading
import time

import pytest
import ray
from ray.cluster_utils import Cluster

from evalcluster.jobs.driver import run_suite
from evalcluster.jobs.options import RunOptions
from evalcluster.jobs.prepare import prepare_suite
from evalcluster.simulator import SimulatorConfig, SimulatorThread
from evalcluster.store.fs import open_store
from evalcluster.store.lake import list_shards, read_results
from tests.conftest import openai_provider, write_suite

KEY_ENV = {"EVALCLUSTER_TEST_KEY": "sk-test-not-a-real-key-0123456789"}


@pytest.fixture
def cluster():
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    workers = [cluster.add_node(num_cpus=2) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(
        address=cluster.address,
        namespace="evalcluster",
        log_to_driver=False,
        runtime_env={"env_vars": KEY_ENV},
    )
    try:
        yield cluster, workers
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_removing_a_worker_node_mid_run_still_gives_exactly_one_row_each(tmp_path, cluster):
    cluster, workers = cluster
    samples, epochs = 120, 2
    with SimulatorThread(SimulatorConfig(latency_ms=60)) as sim:
        path = write_suite(
            tmp_path,
            samples=samples,
            shard_size=6,
            epochs=epochs,
            providers={"p": openai_provider(sim.url, max_concurrency=8)},
            targets=[
                {"name": "a", "provider": "p", "model": "m", "params": {"temperature": 0}},
                {"name": "b", "provider": "p", "model": "n", "params": {"temperature": 0}},
            ],
        )
        store = open_store(str(tmp_path / "store"))
        result: dict = {}
        runner = threading.Thread(
            target=lambda: result.update(
                run=run_suite(
                    prepare_suite(path),
                    RunOptions(
                        store=store.uri, tracking_uri=None, run_id="nodes", max_inflight_shards=6
                    ),
                )
            )
        )
        runner.start()
        deadline = time.monotonic() + 120
        while (
            len(list_shards(store, "nodes")) < 4
            if store.exists("runs/run_id=nodes/_manifest.json")
            else True
        ):
            assert runner.is_alive() and time.monotonic() < deadline
            time.sleep(0.2)
        cluster.remove_node(workers[0])  # a machine is lost with its shards and actors
        runner.join(timeout=300)
        assert not runner.is_alive()
    assert result["run"].status == "finished", result["run"].message
    rows = read_results(store, "nodes").to_pylist()
    keys = [(r["target"], r["sample_id"], r["epoch"]) for r in rows]
    assert len(keys) == len(set(keys)) == 2 * samples * epochs
    assert all(r["error_kind"] is None for r in rows)
