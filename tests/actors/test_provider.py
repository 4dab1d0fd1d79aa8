"""The provider actor over real HTTP (simulator) and a real local Ray: one limit shared by many
processes, attempts and errors on results, fallback, budget, restarts, status.

The pipeline's own logic (rate, send window, fair queue, breaker and probes, retries, pauses,
slots) is tested on a manual clock in tests/limits/test_pipeline.py."""

from __future__ import annotations

import os
import threading
import time

from evalcluster.actors.provider import provider_actor_name, provider_status_rows
from evalcluster.cluster import NAMESPACE
from evalcluster.jobs.driver import run_suite
from evalcluster.jobs.options import RunOptions
from evalcluster.jobs.prepare import prepare_suite
from evalcluster.simulator import SimulatorConfig, SimulatorThread
from evalcluster.store.fs import open_store
from evalcluster.store.lake import read_results
from evalcluster.suite.models import ProviderConfig
from tests.actors.conftest import provider_config, requests
from tests.conftest import openai_provider, write_suite

FAST_RETRY = {"base_delay_s": 0.05, "max_delay_s": 0.2}


def options(tmp_path, **kw) -> RunOptions:
    return RunOptions(store=str(tmp_path / "store"), tracking_uri=None, **kw)


def wait_until(predicate, timeout_s: float = 10.0, every_s: float = 0.02) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(every_s)


def outcomes(sim) -> dict[str, int]:
    return sim.stats()["by_outcome"]


def test_shards_in_two_worker_processes_share_one_limit(local_ray, sim, make_actor):
    rpm, per_task = 1200, 60
    sim.reconfigure(rpm=rpm)
    config = provider_config(sim.url, rpm=rpm, retry=FAST_RETRY)
    make_actor("p", config)
    name = provider_actor_name("p", config)

    @local_ray.remote(num_cpus=0.5)
    def shard(run_id: str, start: int) -> tuple[int, int]:
        import ray

        actor = ray.get_actor(name, namespace=NAMESPACE)
        results = ray.get(actor.complete_batch.remote(run_id, requests(per_task, start=start)))
        return os.getpid(), sum(r.ok for r in results)

    started = time.monotonic()
    (pid_a, ok_a), (pid_b, ok_b) = local_ray.get([shard.remote("a", 0), shard.remote("b", 1000)])
    elapsed = time.monotonic() - started
    assert pid_a != pid_b and pid_a != os.getpid()
    assert ok_a == ok_b == per_task
    stats = outcomes(sim)
    # One limit for both processes: at most the few boundary refusals a loaded machine causes
    # (see the test above). An actor at twice the rate, as two limits would be, saw 50.
    assert stats["ok"] == 2 * per_task and stats["rate_limited"] <= 2 * per_task // 20
    assert elapsed >= (2 * per_task - rpm / 60) / (rpm / 60)


def test_attempts_of_a_request_that_never_succeeds_survive_into_the_result(
    local_ray, sim, make_actor
):
    config = provider_config(
        sim.url,
        headers={"x-sim-force": "500"},
        retry={**FAST_RETRY, "max_attempts": 3},
        breaker={"failure_threshold": 100},
    )
    [result] = local_ray.get(make_actor("p", config).complete_batch.remote("r", requests(1)))
    assert result.error_kind == "server_error"
    assert result.attempts == 3
    assert outcomes(sim)["forced_500"] == 3


def test_fallback_serves_a_suite_whose_primary_is_down_and_rows_name_it(local_ray, tmp_path):
    samples = 24
    with (
        SimulatorThread(SimulatorConfig(error_503_rate=1.0)) as down,
        SimulatorThread(SimulatorConfig(accuracy=1.0)) as up,
    ):
        providers = {
            "primary": openai_provider(
                down.url,
                fallback=["backup"],
                retry=FAST_RETRY,
                # Open at the first failure: with a threshold of 2, a retry whose jitter came
                # out near zero could go out between the first and second failure of the wave
                # (seen once: 25 requests for 24 samples), which the breaker rightly allows.
                breaker={"failure_threshold": 1, "reset_timeout_s": 60},
            ),
            "backup": openai_provider(up.url),
        }
        path = write_suite(
            tmp_path,
            samples=samples,
            providers=providers,
            targets=[{"name": "a", "provider": "primary", "model": "m"}],
        )
        result = run_suite(prepare_suite(path), options(tmp_path, run_id="fb"))
        served_by_backup = outcomes(up)["ok"]
        sent_to_primary = down.stats()["requests_total"]
    assert result.status == "finished"
    rows = read_results(open_store(str(tmp_path / "store")), "fb").to_pylist()
    assert len(rows) == samples
    assert {r["served_by"] for r in rows} == {"backup"}
    assert {r["provider"] for r in rows} == {"primary"}  # the target's provider
    assert all(r["error_kind"] is None and r["score_numeric"] == 1.0 for r in rows)
    assert served_by_backup == samples
    # The first wave reached the primary before its breaker opened; nothing after it did.
    assert sent_to_primary <= samples


def test_budget_stops_a_run_and_a_resume_finishes_without_paying_twice(local_ray, tmp_path):
    samples, price_in, price_out = 60, 1.0, 2.0
    with SimulatorThread(
        SimulatorConfig(
            accuracy=1.0, price_input_per_mtok=price_in, price_output_per_mtok=price_out
        )
    ) as sim:
        path = write_suite(
            tmp_path,
            samples=samples,
            shard_size=5,  # a shard's reservation (about $0.0002) fits in the budget
            # Below what all 60 answers cost (about $0.00084), so the run cannot finish within it.
            budget_usd=0.0004,
            providers={"p": openai_provider(sim.url)},
            targets=[{"name": "a", "provider": "p", "model": "m", "params": {"max_tokens": 16}}],
        )
        suite = prepare_suite(path)
        stopped = run_suite(suite, options(tmp_path, run_id="budget"))
        first = sim.stats()
        resumed = run_suite(suite, options(tmp_path, run_id="budget", budget_usd=1.0))
        total = sim.stats()
    assert stopped.status == "budget_exhausted"
    assert 0 < first["requests_total"] < samples
    spent = (first["tokens_in"] * price_in + first["tokens_out"] * price_out) / 1e6
    assert spent <= 0.0004  # reservations are upper bounds, so nothing overshoots
    assert resumed.status == "finished"
    assert total["requests_total"] == samples  # answers from the first part were not bought again
    rows = read_results(open_store(str(tmp_path / "store")), "budget").to_pylist()
    assert sorted(r["sample_id"] for r in rows) == [f"q{i:05d}" for i in range(samples)]


def test_restarted_actor_starts_half_open_at_reduced_rate(local_ray, sim, make_actor):
    actor = make_actor("p", provider_config(sim.url, rpm=600))
    local_ray.get(actor.complete_batch.remote("r", requests(2)))
    assert local_ray.get(actor.status.remote())["restarted"] is False
    local_ray.kill(actor, no_restart=False)
    # Calls made while it restarts fail (ActorUnavailableError); ask until the new one answers.
    wait_until(lambda: (_status_or_none(local_ray, actor) or {}).get("restarted"), timeout_s=30)
    status = local_ray.get(actor.status.remote())
    assert status["breaker"] == "half_open"
    assert status["limiter"]["rate_fraction"] == 0.5
    [result] = local_ray.get(actor.complete_batch.remote("r", requests(1, start=5)))
    assert result.ok
    assert local_ray.get(actor.status.remote())["breaker"] == "closed"


def _status_or_none(ray, actor):
    try:
        return ray.get(actor.status.remote(), timeout=2)
    except Exception:  # noqa: BLE001 - still restarting
        return None


def test_run_survives_its_provider_actor_dying_without_duplicate_rows(local_ray, tmp_path):
    samples = 40
    with SimulatorThread(SimulatorConfig(accuracy=1.0, latency_ms=400)) as sim:
        provider = openai_provider(sim.url)
        path = write_suite(
            tmp_path,
            samples=samples,
            shard_size=10,
            providers={"p": provider},
            targets=[{"name": "a", "provider": "p", "model": "m"}],
        )
        name = provider_actor_name("p", ProviderConfig.model_validate(provider))
        killed = threading.Event()

        def kill_when_busy() -> None:
            wait_until(lambda: sim.stats()["in_flight"] > 0, timeout_s=60)
            local_ray.kill(local_ray.get_actor(name, namespace=NAMESPACE), no_restart=False)
            killed.set()

        killer = threading.Thread(target=kill_when_busy)
        killer.start()
        try:
            result = run_suite(prepare_suite(path), options(tmp_path, run_id="restart"))
        finally:
            killer.join()
        actor = local_ray.get_actor(name, namespace=NAMESPACE)
        status = local_ray.get(actor.status.remote())
        local_ray.kill(actor)
    assert killed.is_set() and status["restarted"] is True
    assert result.status == "finished"
    rows = read_results(open_store(str(tmp_path / "store")), "restart").to_pylist()
    ids = [r["sample_id"] for r in rows]
    assert len(ids) == len(set(ids)) == samples
    assert all(r["error_kind"] is None for r in rows)


def test_provider_status_rows_show_breaker_headroom_inflight_and_error_rate(
    local_ray, sim, make_actor, unique
):
    sim.reconfigure(latency_ms=1500)
    name = f"status-{unique}"  # earlier runs' provider actors are still alive in this cluster
    config = provider_config(sim.url, rpm=600, retry={"max_attempts": 1})
    actor = make_actor(name, config)
    ref = actor.complete_batch.remote("r", requests(3))
    wait_until(lambda: sim.stats()["in_flight"] == 3)
    row = {r["provider"]: r for r in provider_status_rows()}[name]
    assert row["breaker"] == "closed"
    assert row["in_flight"] == 3
    assert "rpm=600" in row["headroom"]
    local_ray.get(ref)
    sim.reconfigure(latency_ms=0, force="500")
    local_ray.get(actor.complete_batch.remote("r", requests(1, start=9)))
    row = {r["provider"]: r for r in provider_status_rows()}[name]
    assert row["requests"] == 4 and row["error_rate"] == 0.25 and row["in_flight"] == 0
