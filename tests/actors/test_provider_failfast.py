"""The provider actor fails fast instead of hanging: a dead endpoint (nothing listens, over real
TCP on loopback) and a provider pause longer than the retry policy allows (the simulator's
forced 429 with retry-after 600), on a real local Ray. The timing of both, the recovery after
a dead endpoint and a pause the policy allows are tested on a manual clock in
tests/limits/test_pipeline.py."""

from __future__ import annotations

import socket
import time

import pytest

from tests.actors.conftest import provider_config, requests


def closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_dead_endpoint_ends_every_request_as_endpoint_down_and_status_says_why(
    local_ray, make_actor
):
    port = closed_port()
    config = provider_config(f"http://127.0.0.1:{port}", breaker={"reset_timeout_s": 60.0})
    actor = make_actor("dead", config)
    # Minutes of retries before the fail-fast rule; about 1-2 s now (benchmarks/dead_endpoint.py).
    results = local_ray.get(actor.complete_batch.remote("r", requests(10)), timeout=60)
    assert [r.error_kind for r in results] == ["endpoint_down"] * 10
    assert all("connection" in (r.error or "") for r in results)
    status = local_ray.get(actor.status.remote())
    assert status["breaker"] == "open" and status["down"] is True
    reason = status["breaker_reason"]
    assert reason["kind"] == "connection" and abs(reason["at"] - time.time()) < 60
    assert status["breaker_detail"]["down"] is True
    assert status["pause"] is None
    # While it stays down, new requests end at once (the next probe is a minute away).
    [late] = local_ray.get(actor.complete_batch.remote("r", requests(1, start=20)), timeout=30)
    assert late.error_kind == "endpoint_down" and late.attempts == 1


def test_a_pause_past_max_retry_after_ends_requests_as_rate_limited(local_ray, sim, make_actor):
    config = provider_config(
        sim.url,
        rpm=60,  # one request at once, then one a second: the rest queue at the bucket
        headers={"x-sim-force": "429", "x-sim-retry-after": "600"},
        retry={"base_delay_s": 0.05, "max_delay_s": 0.2},  # default max_retry_after_s: 120
    )
    actor = make_actor("paused", config)
    results = local_ray.get(actor.complete_batch.remote("r", requests(3)), timeout=60)
    assert [r.error_kind for r in results] == ["rate_limited"] * 3
    assert sim.stats()["requests_total"] <= 2  # the pause held: no hammering
    pause = local_ray.get(actor.status.remote())["pause"]
    assert pause["waits"] is False and "600" in pause["reason"]
    assert pause["until"] == pytest.approx(time.time() + 600, abs=30)
    [late] = local_ray.get(actor.complete_batch.remote("r", requests(1, start=20)), timeout=30)
    assert late.error_kind == "rate_limited" and "max_retry_after_s" in late.error


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
