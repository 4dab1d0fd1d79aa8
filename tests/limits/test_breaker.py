import asyncio

import pytest

from evalcluster.errors import (
    AuthError,
    BadRequestError,
    ContentFilteredError,
    ContextLengthError,
    OverloadedError,
    ProtocolError,
    ProviderConnectionError,
    ProviderTimeoutError,
    QuotaExhaustedError,
    RateLimitedError,
    ServerError,
)
from evalcluster.limits.breaker import CircuitBreaker, counts_as_failure
from evalcluster.limits.clock import ManualClock
from evalcluster.spec.models import BreakerConfig

pytestmark = pytest.mark.anyio

BOOM = ServerError("internal error", status=500)


def make(clock: ManualClock, threshold=3, reset=30.0, probes=1) -> CircuitBreaker:
    return CircuitBreaker(threshold, reset, probes, clock=clock, sleep=clock.sleep)


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        breaker.record_failure(BOOM)


@pytest.mark.parametrize(
    "error",
    [
        ServerError("x", status=500),
        OverloadedError("x", status=529),
        ProviderTimeoutError("x"),
        ProviderConnectionError("x"),
        ProtocolError("html instead of json", status=502),
        ProtocolError("stream dropped", status=None),
    ],
    ids=lambda e: f"{type(e).__name__}-{e.status}",
)
def test_provider_side_failures_count(error):
    assert counts_as_failure(error)


@pytest.mark.parametrize(
    "error",
    [
        AuthError("x", status=401),
        BadRequestError("x", status=400),
        ContextLengthError("x", status=400),
        RateLimitedError("x", status=429),
        QuotaExhaustedError("x", status=429),
        ContentFilteredError("x", status=400),
        ProtocolError("bad json", status=404),
        RuntimeError("a bug of ours"),
    ],
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
    }
