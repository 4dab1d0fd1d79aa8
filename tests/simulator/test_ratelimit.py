import random

import pytest

from evalcluster.simulator.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_window_admits_a_sixtieth_of_rpm_then_refuses_until_it_ends():
    clock = FakeClock()
    limiter = RateLimiter(rpm=600, tpm=None, window_s=1.0, clock=clock)
    assert all(limiter.try_acquire(10).admitted for _ in range(10))
    clock.now += 0.25
    refused = limiter.try_acquire(10)
    assert not refused.admitted
    assert refused.limited_by == "requests"
    assert refused.retry_after_s == pytest.approx(0.75)
    clock.now += 0.75
    assert limiter.try_acquire(10).admitted


def test_a_small_rpm_lengthens_the_window_rather_than_exceeding_the_limit():
    clock = FakeClock()
    limiter = RateLimiter(rpm=30, tpm=None, window_s=1.0, clock=clock)
    assert limiter.try_acquire(1).admitted
    clock.now += 1.5
    refused = limiter.try_acquire(1)
    assert not refused.admitted and refused.retry_after_s == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.try_acquire(1).admitted


def test_a_request_larger_than_a_window_goes_into_an_empty_window_and_leaves_debt():
    clock = FakeClock()
    limiter = RateLimiter(rpm=None, tpm=600, window_s=1.0, clock=clock)  # 10 tokens a window
    assert limiter.try_acquire(35).admitted
    refused = limiter.try_acquire(1)
    assert not refused.admitted and refused.limited_by == "tokens"
    # 35 tokens = 3.5 windows: the next request of 1 token fits in the 4th window from now.
    assert refused.retry_after_s == pytest.approx(3.0)
    clock.now += 3.0
    assert limiter.try_acquire(1).admitted


def test_a_request_over_the_whole_minute_limit_is_refused_as_too_large():
    limiter = RateLimiter(rpm=None, tpm=100, window_s=1.0, clock=FakeClock())
    refused = limiter.try_acquire(101)
    assert not refused.admitted and refused.too_large and refused.limited_by == "tokens"


def test_both_limits_must_admit_and_only_admitted_requests_are_charged():
    clock = FakeClock()
    limiter = RateLimiter(rpm=600, tpm=600, window_s=1.0, clock=clock)  # 10 req, 10 tok
    assert limiter.try_acquire(8).admitted
    assert not limiter.try_acquire(8).admitted  # tokens refuse: requests must not be charged
    state = limiter.requests_state()
    assert state is not None and state.remaining == 9 and state.limit == 600
    tokens = limiter.tokens_state()
    assert tokens is not None and tokens.remaining == 2 and tokens.reset_s == pytest.approx(1.0)


def test_the_long_run_rate_never_exceeds_the_limits():
    clock = FakeClock()
    limiter = RateLimiter(rpm=1200, tpm=30_000, window_s=1.0, clock=clock)
    rng = random.Random(0)
    admitted = tokens = 0
    start = clock.now
    while clock.now - start < 60.0:
        cost = rng.randint(1, 900)
        if limiter.try_acquire(cost).admitted:
            admitted += 1
            tokens += cost
        clock.now += rng.uniform(0.0, 0.01)
    assert admitted <= 1200 + 20
    assert tokens <= 30_000 + 900 + 500
    assert tokens > 30_000 * 0.8  # and the limiter does let the budget through
