import asyncio

import pytest

from evalcluster.errors import (
    BadRequestError,
    CircuitOpenError,
    EndpointDownError,
    ProviderConnectionError,
    ProviderTimeoutError,
    RateLimitedError,
    ServerError,
)
from evalcluster.limits.breaker import CircuitBreaker, counts_as_failure
from evalcluster.limits.clock import ManualClock
from evalcluster.suite.models import BreakerConfig
from tests.provider_faults import FINAL, TRANSIENT, case_id

pytestmark = pytest.mark.anyio

BOOM = ServerError("internal error", status=500)


def make(clock: ManualClock, threshold=3, reset=30.0, probes=1) -> CircuitBreaker:
    return CircuitBreaker(threshold, reset, probes, clock=clock, sleep=clock.sleep)


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        breaker.record_failure(BOOM)


@pytest.mark.parametrize("error", TRANSIENT, ids=case_id)
def test_provider_side_failures_count(error):
    assert counts_as_failure(error)


@pytest.mark.parametrize(
    "error",
    [*FINAL, RateLimitedError("x", status=429), RuntimeError("a bug of ours")],
    ids=lambda e: f"{type(e).__name__}-{getattr(e, 'status', None)}",
)
def test_client_side_and_unknown_errors_never_trip_it(error):
    assert not counts_as_failure(error)
    breaker = make(ManualClock(), threshold=1)
    for _ in range(10):
        breaker.record_failure(error)
    assert breaker.state == "closed" and breaker.consecutive_failures == 0


def test_opens_after_threshold_consecutive_failures():
    breaker = make(ManualClock(), threshold=3)
    breaker.record_failure(BOOM)
    breaker.record_failure(BOOM)
    assert breaker.state == "closed" and breaker.allow()
    breaker.record_failure(BOOM)
    assert breaker.state == "open" and not breaker.allow()
    assert breaker.opened_count == 1 and breaker.consecutive_failures == 3


def test_a_success_resets_the_streak():
    breaker = make(ManualClock(), threshold=3)
    for _ in range(5):
        breaker.record_failure(BOOM)
        breaker.record_failure(BOOM)
        breaker.record_success()
    assert breaker.state == "closed" and breaker.consecutive_failures == 0


def test_non_counting_errors_do_not_reset_the_streak():
    breaker = make(ManualClock(), threshold=3)
    breaker.record_failure(BOOM)
    breaker.record_failure(BOOM)
    breaker.record_failure(RateLimitedError("slow down", status=429))
    breaker.record_failure(BOOM)
    assert breaker.state == "open"


async def test_half_opens_after_the_reset_timeout():
    clock = ManualClock()
    breaker = make(clock, reset=30.0)
    trip(breaker)
    await clock.advance(29.9)
    assert breaker.state == "open"
    assert breaker.status()["half_open_in_s"] == pytest.approx(0.1)
    await clock.advance(0.1)
    assert breaker.state == "half_open"


async def test_half_open_admits_at_most_the_probe_count():
    clock = ManualClock()
    breaker = make(clock, probes=2)
    trip(breaker)
    await clock.advance(30.0)
    assert [breaker.allow() for _ in range(4)] == [True, True, False, False]
    assert breaker.probes_in_flight == 2
    breaker.release_probe()
    assert breaker.allow() and not breaker.allow()


async def test_probe_success_closes_it():
    clock = ManualClock()
    breaker = make(clock)
    trip(breaker)
    await clock.advance(30.0)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"
    assert all(breaker.allow() for _ in range(100))


async def test_probe_failure_reopens_it_for_another_timeout():
    clock = ManualClock()
    breaker = make(clock)
    trip(breaker)
    await clock.advance(30.0)
    assert breaker.allow()
    breaker.record_failure(ProviderTimeoutError("no answer"))
    assert breaker.state == "open" and breaker.opened_count == 2
    await clock.advance(29.0)
    assert breaker.state == "open"
    await clock.advance(1.0)
    assert breaker.state == "half_open"


async def test_probe_ending_in_a_non_counting_error_frees_its_slot():
    clock = ManualClock()
    breaker = make(clock)
    trip(breaker)
    await clock.advance(30.0)
    assert breaker.allow() and not breaker.allow()
    breaker.record_failure(BadRequestError("prompt rejected", status=400))
    assert breaker.state == "half_open"
    assert breaker.allow()


async def test_late_success_while_open_does_not_close_it():
    clock = ManualClock()
    breaker = make(clock)
    trip(breaker)
    breaker.record_success()  # answer to a request sent before it opened
    assert breaker.state == "open" and not breaker.allow()


async def test_wait_for_probe_holds_work_until_the_probe_then_releases_all_on_success():
    clock = ManualClock()
    breaker = make(clock, reset=10.0)
    trip(breaker)
    admitted: list[float] = []

    async def request() -> None:
        await breaker.wait_for_probe()
        admitted.append(clock())

    tasks = [asyncio.create_task(request()) for _ in range(5)]
    await clock.advance(9.9)
    assert admitted == []
    await clock.advance(0.1)
    assert admitted == [10.0]  # one probe only
    await clock.advance(5.0)
    assert len(admitted) == 1
    breaker.record_success()
    await clock.settle()
    assert admitted == [10.0] + [15.0] * 4
    await asyncio.gather(*tasks)


async def test_wait_for_probe_waits_another_timeout_when_the_probe_fails():
    clock = ManualClock()
    breaker = make(clock, reset=10.0)
    trip(breaker)
    admitted: list[float] = []

    async def request() -> None:
        await breaker.wait_for_probe()
        admitted.append(clock())

    tasks = [asyncio.create_task(request()) for _ in range(3)]
    await clock.advance(10.0)
    assert admitted == [10.0]
    await clock.advance(1.0)
    breaker.record_failure(BOOM)  # the probe failed at t=11
    await clock.advance(9.9)
    assert admitted == [10.0]
    await clock.advance(0.1)
    assert admitted == [10.0, 21.0]  # the next probe
    breaker.release_probe()  # its outcome did not count: the next waiter probes
    await clock.settle()
    assert admitted == [10.0, 21.0, 21.0]
    await asyncio.gather(*tasks)
    assert clock.pending == 0  # no timers left behind


async def test_wait_for_probe_returns_at_once_when_closed():
    breaker = make(ManualClock())
    await asyncio.wait_for(breaker.wait_for_probe(), timeout=1)


async def test_cancelled_wait_for_probe_leaves_nothing_behind():
    clock = ManualClock()
    breaker = make(clock)
    trip(breaker)
    task = asyncio.create_task(breaker.wait_for_probe())
    await clock.settle()
    task.cancel()
    await clock.settle()
    assert task.cancelled() and clock.pending == 0
    await clock.advance(30.0)
    assert breaker.allow()  # the cancelled waiter took no probe slot


async def test_force_half_open_requires_a_successful_probe_first():
    breaker = make(ManualClock())
    breaker.force_half_open()
    assert breaker.state == "half_open"
    assert breaker.allow() and not breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"


def test_from_config_uses_the_provider_breaker_block():
    config = BreakerConfig(failure_threshold=2, reset_timeout_s=7.5, half_open_probes=3)
    breaker = CircuitBreaker.from_config(config, clock=ManualClock())
    assert (breaker.failure_threshold, breaker.reset_timeout_s, breaker.half_open_probes) == (
        2,
        7.5,
        3,
    )
    status = breaker.status()
    assert status == {
        "state": "closed",
        "consecutive_failures": 0,
        "opened_count": 0,
        "probes_in_flight": 0,
        "half_open_in_s": 0.0,
        "down": False,
        "reason": None,
        "last_failure": None,
    }
    assert (breaker.down_probe_s, breaker.max_wait_s) == (1.0, 30.0)  # 4 x reset_timeout_s


# --- endpoint down: fail fast when the endpoint cannot be reached -----------------------------

REFUSED = ProviderConnectionError("connection refused: nothing listens on 127.0.0.1:9")


def refuse(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        breaker.record_failure(REFUSED)


async def test_connection_failures_open_it_for_a_short_confirming_probe_only():
    clock = ManualClock()
    breaker = make(clock, reset=30.0)
    refuse(breaker)
    assert breaker.state == "open" and not breaker.down
    assert breaker.status()["half_open_in_s"] == 1.0  # down_probe_s, not reset_timeout_s
    reason = breaker.status()["reason"]
    assert reason["kind"] == "connection" and "connection refused" in reason["error"]
    await clock.advance(1.0)
    assert breaker.state == "half_open"


async def test_a_probe_that_cannot_connect_either_makes_the_endpoint_down_for_every_waiter():
    clock = ManualClock()
    breaker = make(clock, reset=30.0)
    refuse(breaker)
    outcomes: list[object] = []

    async def request() -> None:
        try:
            await breaker.wait_for_probe()
            outcomes.append(clock())
        except CircuitOpenError as exc:
            outcomes.append(exc)

    tasks = [asyncio.create_task(request()) for _ in range(4)]
    await clock.advance(1.0)
    assert outcomes == [1.0]  # the probe
    breaker.record_failure(REFUSED)  # ... could not connect either
    await clock.settle()
    await asyncio.gather(*tasks)
    assert breaker.down and breaker.status()["down"]
    errors = outcomes[1:]
    assert len(errors) == 3 and all(type(e) is EndpointDownError for e in errors)
    assert all(e.kind == "endpoint_down" and e.retryable is False for e in errors)
    assert "connection refused" in str(errors[0])
    # New callers fail at once while it stays open, without waiting.
    with pytest.raises(EndpointDownError):
        await asyncio.wait_for(breaker.wait_for_probe(), timeout=1)
    assert clock() == 1.0 and clock.pending == 0
    # Probes go on every reset_timeout_s; a success closes it and clears `down`.
    await clock.advance(30.0)
    assert breaker.state == "half_open" and not breaker.down
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and not breaker.status()["down"]


async def test_a_probe_failing_otherwise_leaves_an_ordinary_open_breaker():
    clock = ManualClock()
    breaker = make(clock, reset=30.0)
    refuse(breaker)
    await clock.advance(1.0)
    assert breaker.allow()
    breaker.record_failure(BOOM)  # it answered, with a 500: reachable
    assert breaker.state == "open" and not breaker.down
    assert breaker.status()["half_open_in_s"] == 30.0
    assert breaker.status()["reason"]["kind"] == "server_error"


async def test_waiting_for_a_probe_is_bounded_by_max_wait_s():
    clock = ManualClock()
    breaker = CircuitBreaker(2, 10.0, clock=clock, sleep=clock.sleep, max_wait_s=25.0)
    trip(breaker)
    task = asyncio.create_task(breaker.wait_for_probe())
    outcomes: list[object] = []

    async def waiter() -> None:
        try:
            await breaker.wait_for_probe()
        except CircuitOpenError as exc:
            outcomes.append((clock(), exc))

    other = asyncio.create_task(waiter())
    await clock.advance(10.0)
    await task  # the probe went at t=10 ...
    await clock.advance(14.0)
    breaker.record_failure(BOOM)  # ... and failed at t=24: open again until t=34
    await clock.advance(1.0)
    await other
    [(at, error)] = outcomes
    assert at == 25.0 and type(error) is CircuitOpenError and error.retryable is False
    assert "internal error" in str(error)
    assert clock.pending == 0
