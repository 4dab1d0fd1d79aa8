"""The live-run registry on a real local Ray: one process for every run, runs opened and closed
by their drivers, the budget ledger, and long polls that end when a run closes."""

from __future__ import annotations

import os
import threading
import time

import pytest

from evalcluster.actors.run import (
    REGISTRY_NAME,
    BatchProgress,
    ProgressDelta,
    RunSnapshot,
    get_live_run,
    open_run,
)
from evalcluster.cluster import NAMESPACE
from evalcluster.errors import UnknownRunError
from evalcluster.jobs.driver import run_suite
from evalcluster.jobs.options import RunOptions
from evalcluster.jobs.prepare import prepare_suite
from evalcluster.simulator import SimulatorConfig, SimulatorThread
from tests.conftest import openai_provider, write_suite


def registry_pid(ray) -> int:
    registry = ray.get_actor(REGISTRY_NAME, namespace=NAMESPACE)
    return ray.get(registry.__ray_call__.remote(lambda _self: os.getpid()))


def test_runs_one_after_another_share_one_registry_process_and_close_when_done(local_ray, tmp_path):
    pids, snapshots = [], []
    with SimulatorThread(SimulatorConfig(accuracy=1.0)) as sim:
        path = write_suite(
            tmp_path,
            samples=12,
            shard_size=4,
            providers={"p": openai_provider(sim.url)},
            targets=[{"name": "a", "provider": "p", "model": "m"}],
        )
        for run_id in ("first", "second"):
            options = RunOptions(store=str(tmp_path / "store"), tracking_uri=None, run_id=run_id)
            result = run_suite(prepare_suite(path), options, on_progress=snapshots.append)
            assert result.status == "finished"
            pids.append(registry_pid(local_ray))
            assert get_live_run(run_id) is None  # closed by its driver
    assert pids[0] == pids[1]
    assert {s["run_id"] for s in snapshots} == {"first", "second"}
    last = snapshots[-1]  # the display's last frame: the final status and count
    assert (last["run_id"], last["status"], last["done"], last["total"]) == (
        "second",
        "finished",
        12,
        12,
    )


def test_calls_about_a_run_that_is_not_open_raise_unknown_run(local_ray):
    live, opened = open_run("known", "s", {"t": 1}, None)
    local_ray.get(opened)
    stranger = type(live)(live.registry, "never-opened")
    with pytest.raises(UnknownRunError, match="never-opened"):
        local_ray.get(stranger.snapshot())
    assert get_live_run("never-opened") is None
    local_ray.get(live.close())
    with pytest.raises(UnknownRunError):
        local_ray.get(live.reserve(0.1))


def test_progress_budget_and_cancel_of_one_run(local_ray):
    live, opened = open_run("ledger", "s", {"t": 10}, 1.0)
    local_ray.get(opened)
    try:
        assert local_ray.get(live.reserve(0.6)) is True
        assert local_ray.get(live.reserve(0.6)) is False  # 0.6 reserved + 0.6 > 1.0
        local_ray.get(live.chunk_done("t", 0.6, 0.25, ProgressDelta(done=4, errors=1)))
        assert local_ray.get(live.reserve(0.6)) is True  # 0.25 spent + 0.6 fits
        snap = local_ray.get(live.snapshot())
        assert (snap["done"], snap["total"], snap["errors"]) == (4, 10, 1)
        assert snap["budget"]["spent_usd"] == pytest.approx(0.25)
        assert snap["budget"]["reserved_usd"] == pytest.approx(0.6)
        assert snap["budget"]["exhausted"] is True
        local_ray.get(live.cancel())
        assert local_ray.get(live.is_cancelled()) is True
        assert local_ray.get(live.reserve(0.01)) is False  # a cancelled run reserves nothing
    finally:
        local_ray.get(live.close())


def test_reopening_a_run_starts_its_live_state_afresh(local_ray):
    live, opened = open_run("resumed", "s", {"t": 5}, None)
    local_ray.get(opened)
    local_ray.get([live.report("t", ProgressDelta(done=3)), live.cancel()])
    again, opened = open_run("resumed", "s", {"t": 5}, None)
    local_ray.get(opened)
    snap = local_ray.get(again.snapshot())
    assert (snap["done"], snap["cancel_requested"]) == (0, False)
    local_ray.get(again.close())


def test_a_long_poll_returns_the_last_snapshot_when_the_run_closes(local_ray):
    live, opened = open_run("polled", "s", {"t": 2}, None)
    local_ray.get(opened)
    local_ray.get(live.set_status("finished"))
    version = local_ray.get(live.snapshot())["version"]
    waited: dict = {}

    def poll() -> None:
        started = time.monotonic()
        waited["snapshot"] = local_ray.get(live.wait_for_change(version, 30.0))
        waited["s"] = time.monotonic() - started

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.5)
    local_ray.get(live.close())
    thread.join(timeout=20)
    assert waited["s"] < 10  # woken by the close, not by the 30 s timeout
    assert waited["snapshot"]["status"] == "finished"
    assert waited["snapshot"]["run_id"] == "polled"


def test_a_run_that_fails_before_its_shards_start_is_not_left_live(
    local_ray, tmp_path, monkeypatch
):
    from evalcluster.actors import provider

    def no_actors(*_args, **_kwargs):
        raise RuntimeError("provider actors could not start")

    # the Ray executor looks it up at call time (jobs/executors.py)
    monkeypatch.setattr(provider, "ensure_provider_actors", no_actors)
    path = write_suite(
        tmp_path,
        samples=4,
        providers={"p": openai_provider("http://127.0.0.1:9")},
        targets=[{"name": "a", "provider": "p", "model": "m"}],
    )
    options = RunOptions(store=str(tmp_path / "store"), tracking_uri=None, run_id="early")
    with pytest.raises(RuntimeError, match="could not start"):
        run_suite(prepare_suite(path), options)
    assert get_live_run("early") is None


def test_batch_progress_reaches_the_snapshot_and_only_a_change_wakes_readers(local_ray):
    live, opened = open_run("batched", "s", {"t": 4}, None)
    local_ray.get(opened)
    try:
        before = local_ray.get(live.snapshot())
        assert isinstance(before, RunSnapshot) and before.batches is None
        assert before.to_dict()["batches"] is None
        queued = BatchProgress(queued=4)
        local_ray.get(live.set_batches(queued))
        after = local_ray.get(live.snapshot())
        assert (after.batches, after.version) == (queued, before.version + 1)
        local_ray.get(live.set_batches(BatchProgress(queued=4)))  # the same counts again
        assert local_ray.get(live.snapshot()).version == after.version
        at_provider = BatchProgress.from_counts(
            {"batches_in_progress": 1, "requests_in_progress": 4, "unknown_count": 9}
        )
        local_ray.get(live.set_batches(at_provider))
        snap = local_ray.get(live.snapshot())
        assert snap.version == after.version + 1
        assert snap.to_dict()["batches"] == {
            "queued": 0,
            "batches_in_progress": 1,
            "requests_in_progress": 4,
            "answered": 0,
            "retried": 0,
            "anomalies": 0,
        }
        assert snap["batches"] == snap.to_dict()["batches"]  # the dict view of older callers
    finally:
        local_ray.get(live.close())
