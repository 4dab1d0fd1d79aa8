"""The simulator's token-bucket mode: a bucket of one window's worth, refilled continuously."""

import pytest

from evalcluster.simulator import SimulatorConfig
from evalcluster.simulator.ratelimit import RateLimiter
from evalcluster.simulator.server import SimulatorServer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def bucket(rpm=None, tpm=None, clock=None) -> RateLimiter:
    return RateLimiter(rpm, tpm, window_s=1.0, clock=clock, mode="token_bucket")


def test_a_full_bucket_admits_one_second_of_requests_then_one_per_refill():
    clock = FakeClock()
    limiter = bucket(rpm=600, clock=clock)  # 10 a second, a bucket of 10
    assert all(limiter.try_acquire(1).admitted for _ in range(10))
    refused = limiter.try_acquire(1)
    assert not refused.admitted and refused.limited_by == "requests"
    assert refused.retry_after_s == pytest.approx(0.1)
    clock.now += 0.1  # refilled by one, not by a whole window
    assert limiter.try_acquire(1).admitted
    assert not limiter.try_acquire(1).admitted


def test_unlike_a_window_a_bucket_refills_mid_second():
    clock = FakeClock()
    window = RateLimiter(600, None, window_s=1.0, clock=clock)
    refilled = bucket(rpm=600, clock=clock)
    for limiter in (window, refilled):
        assert all(limiter.try_acquire(1).admitted for _ in range(10))
    clock.now += 0.5
    admitted = [sum(lim.try_acquire(1).admitted for _ in range(10)) for lim in (window, refilled)]
    assert admitted == [0, 5]


def test_a_bucket_never_admits_more_than_capacity_plus_the_rate_over_time():
    clock = FakeClock()
    limiter = bucket(rpm=1200, clock=clock)  # 20 a second, a bucket of 20
    admitted = 0
    for _ in range(3000):  # 3 s offered in 1 ms steps, as fast as the limiter allows
        admitted += limiter.try_acquire(1).admitted
        clock.now += 0.001
    assert admitted == pytest.approx(20 + 3.0 * 20, abs=1)


def test_a_token_request_larger_than_the_bucket_waits_for_a_full_bucket_and_leaves_debt():
    clock = FakeClock()
    limiter = bucket(tpm=600, clock=clock)  # 10 tokens a second, a bucket of 10
    assert limiter.try_acquire(25).admitted  # full bucket: admitted, 15 in debt
    refused = limiter.try_acquire(1)
    assert not refused.admitted and refused.limited_by == "tokens"
    assert refused.retry_after_s == pytest.approx(1.6)  # back to 1 token from -15
    assert limiter.try_acquire(700).too_large


def test_headers_report_the_bucket_level_and_the_time_to_full():
    clock = FakeClock()
    limiter = bucket(rpm=600, clock=clock)
    for _ in range(4):
        limiter.try_acquire(1)
    state = limiter.requests_state()
    assert state.limit == 600 and state.remaining == 6
    assert state.reset_s == pytest.approx(0.4)


def test_the_server_uses_the_configured_mode_and_restarts_it_on_change():
    server = SimulatorServer(SimulatorConfig(rpm=600, rate_limiter="token_bucket"))
    assert type(server.limiter.requests).__name__ == "BucketLimit"
    server.reconfigure({"rate_limiter": "window"})
    assert type(server.limiter.requests).__name__ == "WindowLimit"
