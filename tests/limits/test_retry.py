import pytest

from evalcluster.errors import (
    AuthError,
    BadRequestError,
    CircuitOpenError,
    OverloadedError,
    ProviderTimeoutError,
    RateLimitedError,
    ServerError,
)
from evalcluster.limits.clock import ManualClock
from evalcluster.limits.retry import (
    Attempted,
    RetryDecision,
    backoff_ceiling,
    call_with_retries,
    decide,
)
from evalcluster.suite.models import RetryConfig
from tests.provider_faults import FINAL, TRANSIENT

pytestmark = pytest.mark.anyio

CONFIG = RetryConfig(
    max_attempts=5, max_total_s=100.0, base_delay_s=1.0, max_delay_s=8.0, max_retry_after_s=60.0
)


def half() -> float:
    return 0.5


@pytest.mark.parametrize(
    ("error", "action"),
    [
        *((error, "transient") for error in TRANSIENT),
        (CircuitOpenError("x"), "transient"),
        (RateLimitedError("x", status=429), "rate_limit"),
        *((error, "no") for error in FINAL),
        (ValueError("a bug of ours"), "no"),
    ],
    ids=lambda v: (
        type(v).__name__ + f"-{getattr(v, 'status', '')}" if not isinstance(v, str) else v
    ),
)
def test_decision_for_each_error_class(error, action):
    decision = decide(error, 1, 0.0, CONFIG, rand=half)
    assert decision.action == action
    assert decision.retry == (action != "no")
    if decision.retry:
        assert decision.delay_s == pytest.approx(0.5)  # half of the first 1 s ceiling
    else:
        assert decision.reason


def test_should_retry_header_overrides_retryable_both_ways():
    conflict = BadRequestError("conflict", status=409)
    conflict.should_retry = True
    assert decide(conflict, 1, 0.0, CONFIG, rand=half).action == "transient"
    server = ServerError("do not", status=500)
    server.should_retry = False
    assert decide(server, 1, 0.0, CONFIG, rand=half).action == "no"
    server.should_retry = None  # header absent: retryable decides
    assert decide(server, 1, 0.0, CONFIG, rand=half).retry


def test_backoff_ceiling_doubles_up_to_max_delay():
    assert [backoff_ceiling(n, CONFIG) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff_ceiling(10_000, CONFIG) == 8.0


def test_full_jitter_draws_below_the_ceiling():
    error = ServerError("x", status=503)
    assert decide(error, 3, 0.0, CONFIG, rand=lambda: 0.0).delay_s == 0.0
    assert decide(error, 3, 0.0, CONFIG, rand=lambda: 0.25).delay_s == pytest.approx(1.0)
    delays = {decide(error, 3, 0.0, CONFIG).delay_s for _ in range(50)}
    assert len(delays) > 40 and all(0.0 <= d < 4.0 for d in delays)


def test_provider_retry_after_is_a_lower_bound():
    limited = RateLimitedError("slow down", status=429, retry_after_s=7.0)
    decision = decide(limited, 1, 0.0, CONFIG, rand=half)
    assert decision == RetryDecision.rate_limit(7.0, decision.reason)
    overloaded = OverloadedError("busy", status=529, retry_after_s=0.1)
    assert decide(overloaded, 4, 0.0, CONFIG, rand=half).delay_s == pytest.approx(4.0)


def test_retry_after_longer_than_the_maximum_gives_up_instead_of_sleeping():
    limited = RateLimitedError("come back tomorrow", status=429, retry_after_s=3600.0)
    decision = decide(limited, 1, 0.0, CONFIG, rand=half)
    assert decision.action == "no"
    assert "3600" in decision.reason and "max_retry_after_s" in decision.reason


def test_attempt_cap():
    error = ServerError("x", status=500)
    assert decide(error, 4, 0.0, CONFIG, rand=half).retry
    decision = decide(error, 5, 0.0, CONFIG, rand=half)
    assert decision.action == "no" and "max_attempts" in decision.reason


def test_total_time_cap_counts_the_coming_wait():
    limited = RateLimitedError("x", status=429, retry_after_s=30.0)
    assert decide(limited, 1, 70.0, CONFIG, rand=half).retry
    decision = decide(limited, 1, 70.5, CONFIG, rand=half)
    assert decision.action == "no" and "max_total_s" in decision.reason


class Flaky:
    """Fails with the given errors in turn, then answers."""

    def __init__(self, *errors: BaseException, value: str = "ok") -> None:
        self.errors = list(errors)
        self.calls = 0
        self.value = value

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.value


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def test_flaky_call_is_retried_and_reports_its_attempts():
    fn = Flaky(ServerError("a", status=500), RateLimitedError("b", status=429, retry_after_s=3.0))
    sleeps = Sleeps()
    result = await call_with_retries(fn, CONFIG, sleep=sleeps, rand=half)
    assert result == Attempted("ok", 3)
    assert fn.calls == 3
    # a transient's jittered backoff, then the provider's own retry-after
    assert sleeps.delays == [0.5, 3.0]


async def test_first_try_success_is_one_attempt_without_sleeping():
    sleeps = Sleeps()
    assert await call_with_retries(Flaky(value="x"), CONFIG, sleep=sleeps) == Attempted("x", 1)
    assert sleeps.delays == []


async def test_final_failure_raises_the_last_error_with_attempts():
    errors = [ServerError(f"failure {i}", status=500) for i in range(10)]
    fn = Flaky(*errors)
    sleeps = Sleeps()
    with pytest.raises(ServerError) as info:
        await call_with_retries(fn, CONFIG, sleep=sleeps, rand=half)
    assert info.value is errors[4]
    assert info.value.attempts == 5 and fn.calls == 5
    assert sleeps.delays == [0.5, 1.0, 2.0, 4.0]


async def test_non_retryable_error_is_raised_at_once():
    fn = Flaky(AuthError("invalid key", status=401))
    sleeps = Sleeps()
    with pytest.raises(AuthError) as info:
        await call_with_retries(fn, CONFIG, sleep=sleeps)
    assert info.value.attempts == 1 and fn.calls == 1 and sleeps.delays == []


async def test_long_retry_after_is_not_slept_through():
    fn = Flaky(RateLimitedError("daily window", status=429, retry_after_s=600.0))
    sleeps = Sleeps()
    with pytest.raises(RateLimitedError) as info:
        await call_with_retries(fn, CONFIG, sleep=sleeps)
    assert info.value.attempts == 1 and sleeps.delays == []


async def test_total_time_cap_stops_retries_on_the_injected_clock():
    clock = ManualClock()
    config = RetryConfig(max_attempts=100, max_total_s=10.0, base_delay_s=4.0, max_delay_s=4.0)
    fn = Flaky(*[ProviderTimeoutError("slow") for _ in range(100)])

    async def scenario() -> None:
        with pytest.raises(ProviderTimeoutError) as info:
            await call_with_retries(fn, config, sleep=clock.sleep, clock=clock, rand=lambda: 0.999)
        # waits of ~4 s: attempts at 0, 4, 8; a fourth would start past 10 s
        assert info.value.attempts == 3

    await clock.run(scenario())
    assert clock() == pytest.approx(7.992)
