"""Runs whose provider is in batch mode (`mode: batch`), against the simulator's batch APIs
over real HTTP: every row answered by batch at half the price, nothing sent sync; the spec's
checks on `mode`; `mode: auto` decided by the number of requests."""

from __future__ import annotations

import os
import signal
import subprocess

import httpx
import pytest
from pydantic import ValidationError

from evalcluster.jobs.driver import run_suite
from evalcluster.jobs.options import RunOptions
from evalcluster.jobs.prepare import prepare_suite
from evalcluster.jobs.shard import batching_providers
from evalcluster.simulator import SimulatorConfig, SimulatorThread
from evalcluster.store.batch_ledger import BatchLedger
from evalcluster.store.fs import open_store
from evalcluster.store.lake import list_shards, read_results
from evalcluster.suite.loader import load_suite
from evalcluster.suite.models import AUTO_BATCH_MIN_REQUESTS, ProviderConfig
from tests.conftest import openai_provider, write_suite
from tests.jobs.cli_process import kill_group, start_cli_run, wait_while_running

SAMPLES = 20
FAST_BATCH = {"max_wait_s": 0.1, "poll_initial_s": 0.1, "poll_max_s": 0.5}


@pytest.fixture
def sim():
    with SimulatorThread(SimulatorConfig(accuracy=1.0, batch_turnaround_s=0.5)) as sim:
        yield sim


def _suite(tmp_path, sim, **provider):
    return write_suite(
        tmp_path,
        samples=SAMPLES,
        providers={"p": openai_provider(sim.url, **provider)},
        targets=[{"name": "a", "provider": "p", "model": "m", "params": {"temperature": 0}}],
    )


def _run(tmp_path, path, executor, run_id, store="store", **kw):
    opts = RunOptions(
        store=str(tmp_path / store), tracking_uri=None, executor=executor, run_id=run_id, **kw
    )
    return run_suite(prepare_suite(path), opts)


def test_a_finished_runs_batch_lane_leaves_the_shared_provider_actor(local_ray, tmp_path, sim):
    """The provider actor outlives the run (it is the cluster's): the run's lane must not stay
    in it, one per run, for as long as the actor lives."""
    from evalcluster.actors.provider import provider_actor_name
    from evalcluster.cluster import NAMESPACE
    from evalcluster.lazy_ray import ray

    path = _suite(tmp_path, sim, mode="batch", batch=FAST_BATCH)
    seen: list[int] = []

    def watch(snapshot) -> None:  # the lane is there while the run batches
        if snapshot.batches is not None:
            seen.append(snapshot.batches.answered)

    opts = RunOptions(
        store=str(tmp_path / "store"), tracking_uri=None, executor="ray", run_id="lane"
    )
    result = run_suite(prepare_suite(path), opts, on_progress=watch)
    assert result.status == "finished", result.message
    assert seen and max(seen) == SAMPLES
    config = load_suite(path).spec.providers["p"]
    actor = ray.get_actor(provider_actor_name("p", config), namespace=NAMESPACE)
    assert ray.get(actor.batch_status.remote("lane"), timeout=10) is None


def test_batch_mode_answers_every_row_by_batch_at_half_price(executor, tmp_path, sim):
    path = _suite(tmp_path, sim, mode="batch", batch=FAST_BATCH)
    result = _run(tmp_path, path, executor, "batched")
    assert result.status == "finished", result.message
    stats = sim.stats()
    assert stats["by_outcome"]["ok"] == 0  # not one sync call
    assert stats["batches"]["requests_submitted"] == SAMPLES
    assert stats["batches"]["requests_resubmitted"] == 0
    assert stats["batches"]["created"] >= 1
    rows = read_results(open_store(str(tmp_path / "store")), "batched").to_pylist()
    assert len(rows) == SAMPLES
    assert all(r["error_kind"] is None and r["output"] for r in rows)
    assert all(r["score_exact"] == 1.0 for r in rows)
    ledger = BatchLedger(open_store(str(tmp_path / "store")))
    entries = ledger.entries("batched")
    assert entries and all(e.state == "done" for e in entries)
    assert sum(len(e.intent.requests) for e in entries) == SAMPLES

    # The same suite sync (its own store: the answers would be cache hits otherwise).
    (tmp_path / "sync").mkdir()
    sync_path = _suite(tmp_path / "sync", sim)
    synced = _run(tmp_path, sync_path, executor, "synced", store="sync-store")
    assert synced.status == "finished", synced.message
    assert sim.stats()["by_outcome"]["ok"] == SAMPLES
    sync_rows = read_results(open_store(str(tmp_path / "sync-store")), "synced").to_pylist()
    by_id = {r["sample_id"]: r for r in sync_rows}
    for row in rows:
        twin = by_id[row["sample_id"]]
        assert (row["input_tokens"], row["output_tokens"]) == (
            twin["input_tokens"],
            twin["output_tokens"],
        )
        assert twin["cost_usd"] > 0
        assert row["cost_usd"] == pytest.approx(twin["cost_usd"] * 0.5)
        # the row records what was paid and what batching saved (the other half)
        assert row["batch"] is True and twin["batch"] is False
        assert row["usd_saved_batch"] == pytest.approx(twin["cost_usd"] * 0.5)
        assert twin["usd_saved_batch"] == 0.0
        assert row["usd_saved_cache"] == 0.0 and row["cached_input_tokens"] == 0
    saved = result.summary["targets"]["a"]["usd_saved_batch"]
    assert saved == pytest.approx(sum(r["cost_usd"] for r in rows))
    assert result.summary["usd_saved_batch"] == pytest.approx(saved)
    assert synced.summary["targets"]["a"]["usd_saved_batch"] == 0.0


def test_lines_the_batch_does_not_answer_go_the_sync_path(tmp_path):
    config = SimulatorConfig(accuracy=1.0, batch_turnaround_s=0.3, batch_line_error_rate=0.3)
    with SimulatorThread(config) as flaky:
        path = _suite(tmp_path, flaky, mode="batch", batch=FAST_BATCH)
        result = _run(tmp_path, path, "local", "flaky")
        stats = flaky.stats()
    assert result.status == "finished", result.message
    errored = stats["by_outcome"]["batch_error"]
    assert 0 < errored < SAMPLES  # the simulator's per-line errors, drawn by custom_id
    assert stats["by_outcome"]["ok"] == errored  # each sent once more, sync
    rows = read_results(open_store(str(tmp_path / "store")), "flaky").to_pylist()
    assert len(rows) == SAMPLES
    assert all(r["error_kind"] is None and r["score_exact"] == 1.0 for r in rows)
    # the sync answers are priced in full, the batched ones at half
    prices = sorted(round(r["cost_usd"] / ((r["input_tokens"] + 2 * r["output_tokens"]) / 1e6), 6)
                    for r in rows)  # fmt: skip
    assert prices.count(1.0) == errored
    assert prices.count(0.5) == SAMPLES - errored
    assert sum(not r["batch"] for r in rows) == errored  # the row says which way it was paid
    assert all((r["usd_saved_batch"] > 0) == r["batch"] for r in rows)


def test_batched_run_under_a_budget_reserves_at_the_batch_rate(tmp_path, sim):
    path = _suite(tmp_path, sim, mode="batch", batch=FAST_BATCH)
    # Every request reserves (input + 1,024 output tokens) x the price: about $0.0021 sync,
    # $0.00105 by batch. 20 requests fit in $0.03 only at the batch rate.
    result = _run(tmp_path, path, "local", "budgeted", budget_usd=0.03)
    assert result.status == "finished", result.message
    assert len(read_results(open_store(str(tmp_path / "store")), "budgeted")) == SAMPLES
    assert sim.stats()["by_outcome"]["ok"] == 0


def test_mode_is_checked_against_the_kind():
    for kind in ("openai", "anthropic", "gemini", "simulated"):
        assert ProviderConfig(kind=kind, mode="batch").mode == "batch"
    with pytest.raises(ValidationError, match=r"mode 'batch' needs a kind with a batch API"):
        ProviderConfig(kind="openrouter", mode="batch")
    with pytest.raises(ValidationError, match=r"mode 'auto'.*kind 'local'"):
        ProviderConfig(kind="local", base_url="http://127.0.0.1:1/v1", mode="auto")
    with pytest.raises(ValidationError, match="mode"):
        ProviderConfig(kind="openai", mode="sometimes")


def test_auto_batches_an_endpoint_sent_enough_requests(tmp_path, sim):
    path = _suite(tmp_path, sim, mode="auto")
    spec = load_suite(path).spec
    providers = dict(spec.providers)
    assert batching_providers(spec, providers, AUTO_BATCH_MIN_REQUESTS - 1) == frozenset()
    assert batching_providers(spec, providers, AUTO_BATCH_MIN_REQUESTS) == {"p"}
    sync = {"p": providers["p"].model_copy(update={"mode": "sync"})}
    assert batching_providers(spec, sync, 10**6) == frozenset()


def test_mode_left_at_sync_keeps_the_suite_version(tmp_path, sim):
    plain = load_suite(_suite(tmp_path, sim)).version
    (tmp_path / "b").mkdir()
    explicit = load_suite(_suite(tmp_path / "b", sim, mode="sync")).version
    assert plain == explicit


def _two_batch_suite(tmp_path, sim: SimulatorThread, samples: int):
    """A suite whose `samples` go to `sim` in batch mode, 8 to a shard and 8 to a batch."""
    batch = {"max_batch_requests": 8, "max_wait_s": 0.1, "poll_initial_s": 0.2, "poll_max_s": 1.0}
    return write_suite(
        tmp_path,
        samples=samples,
        shard_size=8,
        providers={"p": openai_provider(sim.url, mode="batch", batch=batch)},
        targets=[{"name": "a", "provider": "p", "model": "m", "params": {"temperature": 0}}],
    )


def _until_two_live_batches(ledger: BatchLedger, run_id: str, process: subprocess.Popen) -> None:
    """Wait (up to 60 s) for the ledger to hold two live batches of `run_id`, while `process`
    (the run) keeps running."""
    wait_while_running(
        process,
        lambda: sum(1 for e in ledger.entries(run_id) if e.state == "live") >= 2,
        timeout_s=60,
        what="two live batches",
    )


def test_killed_driver_reattaches_to_its_live_batches_and_resends_nothing(tmp_path):
    samples = 16
    with SimulatorThread(SimulatorConfig(accuracy=1.0, batch_turnaround_s=5.0)) as slow:
        suite = _two_batch_suite(tmp_path, slow, samples)
        ledger = BatchLedger(open_store(str(tmp_path / "store")))
        first = start_cli_run(suite, tmp_path, "killed")
        try:
            _until_two_live_batches(ledger, "killed", first)
        finally:
            kill_group(first)
        before = slow.stats()
        assert before["batches"]["requests_submitted"] == samples
        assert before["batches"]["by_state"] == {"in_progress": 2}
        assert not list_shards(open_store(str(tmp_path / "store")), "killed")

        second = start_cli_run(suite, tmp_path, "killed")
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err[-3000:]

        after = slow.stats()
        assert after["batches"]["requests_resubmitted"] == 0
        assert after["batches"]["requests_submitted"] == samples  # nothing sent again
        assert after["batches"]["created"] == 2
        assert after["by_outcome"]["ok"] == 0  # and nothing sync
        rows = read_results(open_store(str(tmp_path / "store")), "killed").to_pylist()
        assert sorted(r["sample_id"] for r in rows) == sorted({r["sample_id"] for r in rows})
        assert len(rows) == samples
        assert all(r["error_kind"] is None and r["score_exact"] == 1.0 for r in rows)
        assert [e.state for e in ledger.entries("killed")] == ["done", "done"]


def test_cancelled_run_cancels_its_batches_at_the_provider(tmp_path):
    with SimulatorThread(SimulatorConfig(accuracy=1.0, batch_turnaround_s=60.0)) as slow:
        suite = _two_batch_suite(tmp_path, slow, 16)
        ledger = BatchLedger(open_store(str(tmp_path / "store")))
        run = start_cli_run(suite, tmp_path, "cancelled")
        try:
            _until_two_live_batches(ledger, "cancelled", run)
            run.send_signal(signal.SIGTERM)  # Ray's job stop, and a cancel here
            run.communicate(timeout=60)
        finally:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
        assert run.returncode != 0
        ids = [e.claim.provider_batch_id for e in ledger.entries("cancelled") if e.claim]
        assert len(ids) == 2
        key = {"Authorization": "Bearer sk-test-not-a-real-key-0123456789"}
        states = {httpx.get(f"{slow.url}/v1/batches/{i}", headers=key).json()["status"]
                  for i in ids}  # fmt: skip
        assert states == {"cancelled"}
        assert slow.stats()["by_outcome"]["ok"] == 0  # the cancelled requests went nowhere
        assert not list_shards(open_store(str(tmp_path / "store")), "cancelled")


def test_progress_says_what_the_batches_are_doing(executor, tmp_path):
    from evalcluster.jobs.display import batch_line

    with SimulatorThread(SimulatorConfig(accuracy=1.0, batch_turnaround_s=2.0)) as slow:
        path = _suite(tmp_path, slow, mode="batch", batch=FAST_BATCH)
        opts = RunOptions(store=str(tmp_path / "store"), tracking_uri=None, executor=executor,
                          run_id="watched")  # fmt: skip
        seen: list[dict] = []
        result = run_suite(prepare_suite(path), opts, on_progress=seen.append)
    assert result.status == "finished", result.message
    live = [s["batches"] for s in seen if (s.get("batches") or {}).get("batches_in_progress")]
    assert live, seen  # a batch was seen at the provider, with its requests
    assert all(b["requests_in_progress"] > 0 for b in live)
    line = batch_line(live[0])
    assert line.startswith("batches: ") and "at the provider" in line
    assert batch_line({"queued": 0, "batches_in_progress": 0, "answered": 20}) == ""
