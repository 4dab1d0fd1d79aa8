"""The provider actor fails fast instead of hanging: a dead endpoint (nothing listens, over real
TCP on loopback) and a provider pause longer than the retry policy allows (the simulator's
forced 429 with retry-after 600), on a real local Ray."""

from __future__ import annotations

import socket
import time

import pytest

from evalcluster.simulator import SimulatorConfig, SimulatorThread
from tests.actors.conftest import provider_config, requests


def closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_dead_endpoint_ends_every_request_as_endpoint_down_then_recovers(local_ray, make_actor):
    port = closed_port()
    base = f"http://127.0.0.1:{port}"
    # Default retry policy; only the probe interval is shortened so the recovery is quick.
    config = provider_config(base, breaker={"reset_timeout_s": 2.0})
    actor = make_actor("dead", config)
    started = time.monotonic()
    results = local_ray.get(actor.complete_batch.remote("r", requests(10)), timeout=60)
    elapsed = time.monotonic() - started
    assert [r.error_kind for r in results] == ["endpoint_down"] * 10
    assert all("connection" in (r.error or "") for r in results)
    assert elapsed < 20  # minutes before; about 1-2 s on an idle machine (benchmarks/)
    status = local_ray.get(actor.status.remote())
    assert status["breaker"] == "open" and status["down"] is True
    reason = status["breaker_reason"]
    assert reason["kind"] == "connection" and abs(reason["at"] - time.time()) < 60
    assert status["breaker_detail"]["down"] is True

    # While it stays down, new requests end at once, without waiting for the next probe.
    started = time.monotonic()
    [late] = local_ray.get(actor.complete_batch.remote("r", requests(1, start=20)), timeout=30)
    assert late.error_kind == "endpoint_down" and late.attempts == 1
    assert time.monotonic() - started < 1.5  # the next probe is up to 2 s away

    # The endpoint comes back: the next probe closes the breaker and requests succeed.
    with SimulatorThread(SimulatorConfig(accuracy=1.0), port=port) as sim:
        deadline = time.monotonic() + 10
        while local_ray.get(actor.status.remote())["breaker"] != "half_open":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        back = local_ray.get(actor.complete_batch.remote("r", requests(5, start=30)), timeout=60)
        assert all(r.ok for r in back), [r.error for r in back]
        assert sim.stats()["by_outcome"]["ok"] == 5
    status = local_ray.get(actor.status.remote())
    assert status["breaker"] == "closed" and status["down"] is False


def forced_429(url: str, **retry) -> dict:
    return provider_config(
        url,
        rpm=60,  # one request at once, then one a second: the rest of the batch queues
        headers={"x-sim-force": "429", "x-sim-retry-after": "600"},
        retry={"base_delay_s": 0.05, "max_delay_s": 0.2, **retry},
    )


def test_a_pause_past_max_retry_after_ends_waiting_requests_as_rate_limited(
    local_ray, sim, make_actor
):
    actor = make_actor("paused", forced_429(sim.url))  # default max_retry_after_s: 120
    started = time.monotonic()
    results = local_ray.get(actor.complete_batch.remote("r", requests(10)), timeout=60)
    elapsed = time.monotonic() - started
    assert [r.error_kind for r in results] == ["rate_limited"] * 10
    assert elapsed < 20  # used to wait the whole 600 s
    assert sim.stats()["requests_total"] <= 2  # the pause held: no hammering
    status = local_ray.get(actor.status.remote())
    pause = status["pause"]
    assert pause["waits"] is False and "600" in pause["reason"]
    assert pause["until"] == pytest.approx(time.time() + 600, abs=30)
    # New requests during the pause end at once too.
    [late] = local_ray.get(actor.complete_batch.remote("r", requests(1, start=20)), timeout=30)
    assert late.error_kind == "rate_limited" and "max_retry_after_s" in late.error


def test_a_pause_the_policy_allows_is_waited_and_shown_with_its_end(local_ray, sim, make_actor):
    actor = make_actor("allowed", forced_429(sim.url, max_retry_after_s=900))
    ref = actor.complete_batch.remote("r", requests(3))
    deadline = time.monotonic() + 20
    while (pause := local_ray.get(actor.status.remote())["pause"]) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert pause["waits"] is True
    assert pause["until"] == pytest.approx(time.time() + 600, abs=30)
    status = local_ray.get(actor.status.remote())
    assert status["limiter"]["paused_for_s"] == pytest.approx(600, abs=30)
    time.sleep(1.0)
    ready, _ = local_ray.wait([ref], timeout=0)
    assert not ready  # the requests wait for the pause (not waited for: the actor is killed)


def test_evalcluster_providers_says_why_a_breaker_is_open_and_until_when_paused():
    from evalcluster.actors.provider import describe_breaker

    down = {"breaker": "open", "down": True, "breaker_reason": {"kind": "connection"}}
    assert describe_breaker(down) == "open (down: connection)"
    failing = {"breaker": "open", "down": False, "breaker_reason": {"kind": "server_error"}}
    assert describe_breaker(failing) == "open (server_error)"
    paused = {"breaker": "closed", "pause": {"until": 0.0, "reason": "retry-after"}}
    assert describe_breaker(paused).startswith("closed; paused until ")
    assert describe_breaker(paused).endswith("(retry-after)")
    assert describe_breaker({"breaker": "closed"}) == "closed"
