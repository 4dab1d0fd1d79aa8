"""The endpoint pipeline (fair queue, breaker, token bucket, send window, slots, retries) on a
manual clock, with a scripted send in place of the adapter: no real time passes."""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from evalcluster.errors import (
    AuthError,
    CircuitOpenError,
    EndpointDownError,
    ProviderConnectionError,
    ProviderError,
    RateLimitedError,
    RequestTooLargeError,
    ServerError,
)
from evalcluster.limits.clock import ManualClock
from evalcluster.limits.pipeline import BreakerOpen, EndpointPipeline
from evalcluster.limits.retry import Attempted
from evalcluster.providers.base import Completion, FinishReason, RateLimitSnapshot, Usage
from evalcluster.suite.models import ProviderConfig

pytestmark = pytest.mark.anyio

WALL0 = 1_700_000_000.0  # the wall clock at simulated time 0
FAST_RETRY = {"base_delay_s": 0.05, "max_delay_s": 0.2}

Failure = Callable[[int, float], ProviderError | None]


def config(**extra: Any) -> ProviderConfig:
    return ProviderConfig.model_validate(
        {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", **extra}
    )


class Endpoint:
    """The send the pipeline is given: answers (or raises what `fail(index, now)` returns)
    after `latency_s` of simulated time, and records each send's time and queue."""

    def __init__(
        self,
        clock: ManualClock,
        *,
        latency_s: float = 0.0,
        fail: Failure | None = None,
        rate_limits: RateLimitSnapshot | None = None,
    ) -> None:
        self.clock = clock
        self.latency_s = latency_s
        self.fail = fail
        self.rate_limits = rate_limits
        self.sent: list[float] = []
        self.queues: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def send(self, queue: str) -> Completion:
        index = len(self.sent)
        self.sent.append(self.clock())
        self.queues.append(queue)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency_s:
                await self.clock.sleep(self.latency_s)
            error = self.fail(index, self.clock()) if self.fail else None
            if error is not None:
                raise error
            return Completion(
                "ok", FinishReason.STOP, Usage(10, 2), self.latency_s * 1000,
                rate_limits=self.rate_limits,
            )  # fmt: skip
        finally:
            self.in_flight -= 1


class Recorder:
    """The pipeline's hooks: breaker states reported and failures seen."""

    def __init__(self) -> None:
        self.states: list[str] = []
        self.failures: list[str] = []


def make(clock: ManualClock, recorder: Recorder | None = None, **extra: Any) -> EndpointPipeline:
    hooks: dict[str, Any] = {}
    if recorder is not None:
        hooks = {
            "on_breaker_state": recorder.states.append,
            "on_failure": lambda exc: recorder.failures.append(exc.kind),
        }
    return EndpointPipeline(
        "p",
        config(**extra),
        clock=clock,
        sleep=clock.sleep,
        wall_clock=lambda: WALL0 + clock(),
        rand=lambda: 0.5,
        **hooks,
    )


async def call(
    pipe: EndpointPipeline,
    endpoint: Endpoint,
    queue: str = "r",
    *,
    tokens: int = 10,
    priority: float = 1.0,
    can_fall_back: bool = False,
) -> Attempted[Completion] | BaseException:
    """One request through the pipeline: its `Attempted` value, or the exception it ended with."""
    try:
        return await pipe.call(
            queue,
            lambda: endpoint.send(queue),
            tokens=tokens,
            priority=priority,
            can_fall_back=can_fall_back,
        )
    except (ProviderError, BreakerOpen) as exc:
        return exc


async def run_all(clock: ManualClock, *calls: Any) -> list[Any]:
    async def together() -> list[Any]:
        return list(await asyncio.gather(*calls))

    return await clock.run(together())


def kinds(outcomes: list[Any]) -> list[str]:
    return ["ok" if isinstance(o, Attempted) else getattr(o, "kind", type(o).__name__)
            for o in outcomes]  # fmt: skip


def server_error(*_: Any) -> ProviderError:
    return ServerError("service unavailable", status=503)


def refused(*_: Any) -> ProviderError:
    return ProviderConnectionError("cannot connect to 127.0.0.1:9: connection refused")


# -- rate: bucket and send window -------------------------------------------------------------


async def test_a_long_run_goes_at_the_configured_rate_and_never_trips_a_fixed_window_limit():
    clock = ManualClock()
    pipe, endpoint = make(clock, rpm=1200), Endpoint(clock)
    samples = 240
    outcomes = await run_all(clock, *(call(pipe, endpoint, "ab"[i % 2]) for i in range(samples)))
    assert kinds(outcomes) == ["ok"] * samples
    # One second's burst (20), then the configured rate: 220 more at 20/s end at 11 s.
    assert endpoint.sent[-1] == pytest.approx((samples - 20) / 20)
    # A provider counting in fixed one-second windows (the simulator, OpenAI's "quantized"
    # limits) sees at most its per-second share in each: nothing would be refused.
    per_second = Counter(math.floor(t + 1e-9) for t in endpoint.sent)
    assert max(per_second.values()) == 20


async def test_the_send_window_keeps_a_refilled_bucket_to_one_burst_per_window():
    clock = ManualClock()
    pipe, endpoint = make(clock, rpm=600), Endpoint(clock)  # 10/s, burst and window: 10 per 1 s
    first = await run_all(clock, *(call(pipe, endpoint) for _ in range(10)))
    assert kinds(first) == ["ok"] * 10 and endpoint.sent == [0.0] * 10
    await clock.advance(0.5)  # the bucket refilled 5: alone it would let 5 go now
    await run_all(clock, *(call(pipe, endpoint) for _ in range(10)))
    later = endpoint.sent[10:]
    assert later[0] == pytest.approx(1.0)  # not before the first burst leaves the window
    for start in endpoint.sent:
        assert sum(1 for t in endpoint.sent if start <= t < start + 1.0 - 1e-9) <= 10


async def test_requests_wait_for_the_token_limit_by_their_estimated_size():
    clock = ManualClock()
    pipe = make(clock, tpm=6000)  # 100 tokens/s, capacity 100
    endpoint = Endpoint(clock, latency_s=10.0)  # no answer (no usage to settle) before t=10
    await run_all(clock, *(call(pipe, endpoint, tokens=50) for _ in range(4)))
    assert endpoint.sent == pytest.approx([0.0, 0.0, 0.5, 1.0])


async def test_an_answer_settles_its_tokens_at_the_reported_usage():
    clock = ManualClock()
    pipe = make(clock, tpm=6000)  # 100 tokens/s, capacity 100
    endpoint = Endpoint(clock, latency_s=0.2)  # each answer reports 12 tokens
    await run_all(clock, *(call(pipe, endpoint, tokens=50) for _ in range(4)))
    # At 0.2 s the first two answers give back 2 x 38 tokens: the others need not wait for
    # the refill (0.5 s and 1.0 s on the estimates alone).
    assert endpoint.sent == pytest.approx([0.0, 0.0, 0.2, 0.24])


async def test_a_request_larger_than_the_whole_tpm_is_rejected_at_once():
    clock = ManualClock()
    pipe, endpoint = make(clock, tpm=100), Endpoint(clock)
    [outcome] = await run_all(clock, call(pipe, endpoint, tokens=500))
    assert isinstance(outcome, RequestTooLargeError)
    assert outcome.attempts == 1 and "tokens per minute" in str(outcome)
    assert endpoint.sent == [] and clock.now == 0.0


# -- fair sharing ---------------------------------------------------------------------------


async def test_runs_share_the_endpoint_in_proportion_to_their_priority():
    clock = ManualClock()
    pipe, endpoint = make(clock, rpm=600), Endpoint(clock)
    await run_all(
        clock,
        *(call(pipe, endpoint, "heavy", priority=2.0) for _ in range(60)),
        *(call(pipe, endpoint, "light", priority=1.0) for _ in range(60)),
    )
    # The first burst went to the heavy run before the light one queued; from then on the
    # queue holds both, and turns go 2:1.
    assert endpoint.queues[:10] == ["heavy"] * 10
    shared = Counter(endpoint.queues[10:70])
    assert abs(shared["heavy"] - 40) <= 1 and abs(shared["light"] - 20) <= 1
    granted = pipe.status()["queue"]["runs"]
    assert granted["heavy"]["granted"] == granted["light"]["granted"] == 60


async def test_runs_of_equal_priority_take_turns():
    clock = ManualClock()
    pipe, endpoint = make(clock, rpm=600), Endpoint(clock)
    await run_all(
        clock,
        *(call(pipe, endpoint, "a") for _ in range(40)),
        *(call(pipe, endpoint, "b") for _ in range(40)),
    )
    shared = endpoint.queues[10:70]  # after the burst "a" took before "b" queued
    assert Counter(shared) == {"a": 30, "b": 30}
    assert all(x != y for x, y in zip(shared, shared[1:], strict=False))


async def test_a_run_that_arrives_late_is_not_starved_by_a_backlog():
    clock = ManualClock()
    pipe, endpoint = make(clock, rpm=600), Endpoint(clock)

    async def late() -> Any:
        await clock.sleep(2.0)
        return await asyncio.gather(*(call(pipe, endpoint, "late") for _ in range(5)))

    await run_all(clock, *(call(pipe, endpoint, "early") for _ in range(60)), late())
    # The late run arrives with 30 of the early run's requests still queued: its five go
    # within the next burst, not after the whole backlog.
    late_at = [t for t, q in zip(endpoint.sent, endpoint.queues, strict=True) if q == "late"]
    assert max(late_at) <= 3.0
    # 65 requests, a backlog: the window lets one burst of 10 go per second.
    assert endpoint.sent == pytest.approx([float(t) for t in range(7) for _ in range(10)][:65])


# -- concurrency slots and cancellation -------------------------------------------------------


async def test_max_concurrency_caps_the_requests_in_flight():
    clock = ManualClock()
    pipe, endpoint = make(clock, max_concurrency=3), Endpoint(clock, latency_s=1.0)
    calls = asyncio.ensure_future(run_all(clock, *(call(pipe, endpoint) for _ in range(9))))
    await clock.settle()
    assert pipe.status()["in_flight"] == 3
    outcomes = await calls
    assert kinds(outcomes) == ["ok"] * 9
    assert endpoint.max_in_flight == 3 and clock.now == pytest.approx(3.0)
    assert pipe.status()["in_flight"] == 0


async def test_a_cancelled_request_gives_back_its_slot_and_its_tokens():
    clock = ManualClock()
    pipe = make(clock, max_concurrency=1, tpm=600)  # 10 tokens per second, capacity 10
    slow = Endpoint(clock, latency_s=100.0)
    task = asyncio.ensure_future(call(pipe, slow, tokens=10))
    await clock.advance(0.5)  # the bucket refilled 5 of the 10 tokens taken
    assert pipe.in_flight == 1
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert pipe.in_flight == 0
    assert pipe.status()["limiter"]["available_tokens"] == pytest.approx(10)
    fast = Endpoint(clock)
    outcomes = await run_all(clock, call(pipe, fast, tokens=10))
    assert kinds(outcomes) == ["ok"] and fast.sent == [0.5]  # the slot and the tokens were free


async def test_a_request_cancelled_while_it_waits_for_the_rate_takes_nothing():
    clock = ManualClock()
    pipe, endpoint = make(clock, rpm=60), Endpoint(clock)  # one at once, then one a second
    await run_all(clock, call(pipe, endpoint))
    waiting = asyncio.ensure_future(call(pipe, endpoint))
    await clock.advance(0.5)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    await run_all(clock, call(pipe, endpoint))
    assert endpoint.sent == [0.0, 1.0]  # the next one got the cancelled one's place


async def test_a_cancelled_probe_frees_the_probe_slot():
    clock = ManualClock()
    pipe = make(clock)
    pipe.conservative_start(0.5)
    slow = Endpoint(clock, latency_s=100.0)
    probe = asyncio.ensure_future(call(pipe, slow))
    await clock.advance(1.0)
    assert pipe.breaker.probes_in_flight == 1
    probe.cancel()
    await asyncio.gather(probe, return_exceptions=True)
    assert pipe.breaker.probes_in_flight == 0
    fast = Endpoint(clock)
    assert kinds(await run_all(clock, call(pipe, fast))) == ["ok"]
    assert fast.sent == [1.0] and pipe.status()["breaker"] == "closed"


# -- retries ----------------------------------------------------------------------------------


async def test_retry_waits_out_the_providers_retry_after_then_succeeds():
    clock = ManualClock()

    def once_429(index: int, now: float) -> ProviderError | None:
        if index == 0:
            return RateLimitedError("slow down", status=429, retry_after_s=1.0)
        return None

    pipe, endpoint = make(clock, retry=FAST_RETRY), Endpoint(clock, fail=once_429)

    async def other_run_later() -> Any:
        await clock.sleep(0.5)
        return await call(pipe, endpoint, "other")

    first, other = await run_all(clock, call(pipe, endpoint), other_run_later())
    assert isinstance(first, Attempted) and first.attempts == 2
    assert isinstance(other, Attempted) and other.attempts == 1
    # The retry waited for the provider's 1 s, not the 0.05 s backoff; the endpoint paused
    # for everyone meanwhile, so the other run's request waited too.
    assert endpoint.sent == [0.0, pytest.approx(1.0), pytest.approx(1.0)]


async def test_transient_failures_are_retried_with_backoff_and_the_attempts_survive():
    clock = ManualClock()
    pipe = make(
        clock,
        retry={"max_attempts": 3, "base_delay_s": 1.0, "max_delay_s": 10.0},
        breaker={"failure_threshold": 100},
    )
    endpoint = Endpoint(clock, fail=server_error)
    [outcome] = await run_all(clock, call(pipe, endpoint))
    assert isinstance(outcome, ServerError) and outcome.attempts == 3
    # Full jitter at rand=0.5: half of 1 s, then half of 2 s.
    assert endpoint.sent == pytest.approx([0.0, 0.5, 1.5])


async def test_errors_that_waiting_cannot_fix_are_not_retried():
    clock = ManualClock()
    pipe = make(clock)
    endpoint = Endpoint(clock, fail=lambda *_: AuthError("bad key", status=401))
    [outcome] = await run_all(clock, call(pipe, endpoint))
    assert isinstance(outcome, AuthError) and outcome.attempts == 1
    assert len(endpoint.sent) == 1 and pipe.status()["breaker"] == "closed"


# -- the circuit breaker ----------------------------------------------------------------------


async def test_breaker_opens_lets_only_probes_through_then_closes_on_recovery():
    clock = ManualClock()
    recorder = Recorder()
    pipe = make(
        clock,
        recorder,
        retry={"max_attempts": 1},
        breaker={"failure_threshold": 3, "reset_timeout_s": 1.0},
    )
    recovered_at = 2.5
    endpoint = Endpoint(clock, fail=lambda i, now: server_error() if now < recovered_at else None)
    first = await run_all(clock, *(call(pipe, endpoint) for _ in range(3)))
    assert kinds(first) == ["server_error"] * 3
    assert pipe.status()["breaker"] == "open"
    await clock.advance(1.0)
    assert pipe.status()["breaker"] == "half_open"

    # No fallback: requests queue for the probe instead of failing, one probe per reset.
    second = await run_all(clock, *(call(pipe, endpoint) for _ in range(5)))
    assert Counter(kinds(second)) == {"server_error": 2, "ok": 3}
    assert endpoint.sent[3:] == pytest.approx([1.0, 2.0, 3.0, 3.0, 3.0])
    assert len(endpoint.sent) == 3 + 5  # nothing was sent twice
    assert pipe.status()["breaker"] == "closed"
    assert recorder.states == ["closed", "open", "half_open", "open", "half_open", "open",
                               "half_open", "closed"]  # fmt: skip
    assert recorder.failures == ["server_error"] * 5


async def test_a_request_that_may_fall_back_is_refused_at_once_while_the_breaker_is_open():
    clock = ManualClock()
    pipe = make(clock, retry={"max_attempts": 1}, breaker={"failure_threshold": 1})
    await run_all(clock, call(pipe, Endpoint(clock, fail=server_error)))
    endpoint = Endpoint(clock)
    [outcome] = await run_all(clock, call(pipe, endpoint, can_fall_back=True))
    assert isinstance(outcome, BreakerOpen)
    assert endpoint.sent == [] and clock.now == 0.0
    await clock.advance(30.0)  # half-open: a request that could fall back is the probe
    [probe] = await run_all(clock, call(pipe, endpoint, can_fall_back=True))
    assert isinstance(probe, Attempted) and pipe.status()["breaker"] == "closed"


async def test_waiting_for_a_probe_is_bounded_by_max_wait_s():
    clock = ManualClock()
    pipe = make(
        clock,
        retry={"max_attempts": 1},
        breaker={"failure_threshold": 1, "reset_timeout_s": 30.0, "max_wait_s": 2.0},
    )
    await run_all(clock, call(pipe, Endpoint(clock, fail=server_error)))
    [outcome] = await run_all(clock, call(pipe, Endpoint(clock)))
    assert type(outcome) is CircuitOpenError and outcome.provider == "p"
    assert clock.now == pytest.approx(2.0)


async def test_requests_queued_for_the_rate_are_not_sent_once_the_breaker_opens():
    clock = ManualClock()
    pipe = make(
        clock,
        rpm=300,  # 5 at once, then one every 0.2 s: most of the batch queues at the bucket
        retry={"max_attempts": 1},
        breaker={"failure_threshold": 2, "reset_timeout_s": 1.5},
    )
    recovered_at = 1.0
    endpoint = Endpoint(
        clock, latency_s=0.1, fail=lambda i, now: server_error() if now < recovered_at else None
    )
    outcomes = await run_all(clock, *(call(pipe, endpoint) for _ in range(12)))
    # The first burst went and failed (opening the breaker at 0.1 s); the rest, still queued
    # for the rate, were not sent until the probe at 1.6 s found the endpoint back.
    assert endpoint.sent[:5] == [0.0] * 5
    assert min(endpoint.sent[5:]) == pytest.approx(1.6)
    assert Counter(kinds(outcomes)) == {"server_error": 5, "ok": 7}
    assert len(endpoint.sent) == 12


# -- failing fast -----------------------------------------------------------------------------


async def test_dead_endpoint_ends_every_request_as_endpoint_down_then_recovers(caplog):
    clock = ManualClock()
    # Default retry policy; only the probe interval is shortened.
    pipe = make(clock, breaker={"reset_timeout_s": 2.0})
    up = False
    endpoint = Endpoint(clock, fail=lambda *_: None if up else refused())
    with caplog.at_level(logging.WARNING, logger="evalcluster.limits.pipeline"):
        outcomes = await run_all(clock, *(call(pipe, endpoint) for _ in range(10)))
    assert kinds(outcomes) == ["endpoint_down"] * 10
    assert all(isinstance(o, EndpointDownError) and "connection refused" in str(o)
               for o in outcomes)  # fmt: skip
    # Ended by the first probe, down_probe_s (1 s) after the opening: not minutes of retries.
    assert clock.now == pytest.approx(1.0)
    assert len(endpoint.sent) == 5 + 1  # the failures that opened it, then the probe
    status = pipe.status()
    assert status["breaker"] == "open" and status["down"] is True
    assert status["breaker_reason"]["kind"] == "connection"
    assert status["breaker_reason"]["at"] == pytest.approx(WALL0 + 1.0)
    assert status["breaker_detail"]["down"] is True
    messages = [r.getMessage() for r in caplog.records]
    assert any("circuit breaker opened after 5 consecutive failures" in m for m in messages)
    assert any("endpoint down (connection" in m for m in messages)

    # While it stays down, new requests end at once, without waiting for the next probe.
    [late] = await run_all(clock, call(pipe, endpoint))
    assert isinstance(late, EndpointDownError) and late.attempts == 1
    assert clock.now == pytest.approx(1.0) and len(endpoint.sent) == 6

    # The endpoint comes back: the next probe (every reset_timeout_s) closes the breaker.
    up = True
    await clock.advance(2.0)
    assert pipe.status()["breaker"] == "half_open"
    back = await run_all(clock, *(call(pipe, endpoint) for _ in range(5)))
    assert kinds(back) == ["ok"] * 5
    status = pipe.status()
    assert status["breaker"] == "closed" and status["down"] is False


async def test_a_pause_past_max_retry_after_ends_waiting_requests_as_rate_limited(caplog):
    clock = ManualClock()
    pipe = make(clock, rpm=60, retry=FAST_RETRY)  # default max_retry_after_s: 120
    endpoint = Endpoint(
        clock, fail=lambda *_: RateLimitedError("slow down", status=429, retry_after_s=600)
    )
    with caplog.at_level(logging.WARNING, logger="evalcluster.limits.pipeline"):
        outcomes = await run_all(clock, *(call(pipe, endpoint) for _ in range(10)))
    assert kinds(outcomes) == ["rate_limited"] * 10
    assert len(endpoint.sent) == 1 and clock.now == 0.0  # the pause held: no hammering
    pause = pipe.status()["pause"]
    assert pause["waits"] is False and "600" in pause["reason"]
    assert pause["until"] == pytest.approx(WALL0 + 600)
    assert any("longer than max_retry_after_s" in r.getMessage() for r in caplog.records)
    # New requests during the pause end at once too.
    [late] = await run_all(clock, call(pipe, endpoint))
    assert isinstance(late, RateLimitedError) and "max_retry_after_s" in str(late)
    assert len(endpoint.sent) == 1


async def test_a_pause_the_policy_allows_is_waited_and_shown_with_its_end():
    clock = ManualClock()
    policy = {**FAST_RETRY, "max_retry_after_s": 900, "max_total_s": 900}
    pipe = make(clock, rpm=60, retry=policy)
    endpoint = Endpoint(
        clock,
        fail=lambda i, now: (
            RateLimitedError("slow down", status=429, retry_after_s=600) if now < 600 else None
        ),
    )
    calls = asyncio.ensure_future(run_all(clock, *(call(pipe, endpoint) for _ in range(3))))
    await clock.settle()
    pause = pipe.status()["pause"]
    assert pause["waits"] is True and pause["until"] == pytest.approx(WALL0 + 600)
    assert pipe.status()["limiter"]["paused_for_s"] == pytest.approx(600)
    await clock.advance(1.0)
    assert not calls.done()  # the requests wait for the pause
    outcomes = await calls
    assert kinds(outcomes) == ["ok"] * 3
    assert endpoint.sent[0] == 0.0 and min(endpoint.sent[1:]) >= 600


async def test_rate_limit_headers_with_nothing_remaining_pause_the_endpoint(caplog):
    clock = ManualClock()
    pipe = make(clock)
    empty = RateLimitSnapshot(remaining_requests=0, reset_requests_s=30.0)
    endpoint = Endpoint(clock, rate_limits=empty)
    with caplog.at_level(logging.WARNING, logger="evalcluster.limits.pipeline"):
        await run_all(clock, call(pipe, endpoint))
        await run_all(clock, call(pipe, endpoint))
    assert endpoint.sent == [0.0, pytest.approx(30.0)]
    assert any("paused until" in r.getMessage() and "no requests remaining" in r.getMessage()
               for r in caplog.records)  # fmt: skip


# -- restart and the owner's hooks ------------------------------------------------------------


async def test_a_conservative_start_is_half_open_at_a_reduced_rate_until_a_probe_succeeds():
    clock = ManualClock()
    recorder = Recorder()
    pipe = make(clock, recorder, rpm=600)
    pipe.conservative_start(0.5)
    pipe.report_breaker()
    status = pipe.status()
    assert status["breaker"] == "half_open"
    assert status["limiter"]["rate_fraction"] == 0.5
    assert status["limiter"]["available_requests"] == 0.0  # no burst after a restart
    endpoint = Endpoint(clock)
    assert kinds(await run_all(clock, call(pipe, endpoint))) == ["ok"]
    assert pipe.status()["breaker"] == "closed"
    assert recorder.states == ["half_open", "closed"]
    assert endpoint.sent == [pytest.approx(0.2)]  # one request at 5/s, from an empty bucket


async def test_hooks_hear_each_failed_attempt_and_each_breaker_change_once():
    clock = ManualClock()
    recorder = Recorder()
    pipe = make(
        clock,
        recorder,
        retry={"max_attempts": 3, **FAST_RETRY},
        breaker={"failure_threshold": 100},
    )
    pipe.report_breaker()
    pipe.report_breaker()
    await run_all(clock, call(pipe, Endpoint(clock, fail=server_error)))
    await run_all(clock, call(pipe, Endpoint(clock)))
    assert recorder.failures == ["server_error"] * 3
    assert recorder.states == ["closed"]


async def test_status_carries_what_a_display_needs():
    clock = ManualClock()
    pipe = make(clock, rpm=600)
    await run_all(clock, call(pipe, Endpoint(clock), "r1"))
    status = pipe.status()
    assert set(status) == {"breaker", "breaker_detail", "down", "breaker_reason", "pause",
                           "in_flight", "limiter", "queue"}  # fmt: skip
    assert status["breaker"] == "closed" and status["down"] is False
    assert status["breaker_reason"] is None and status["pause"] is None
    assert status["limiter"]["rpm"] == 600 and status["limiter"]["available_requests"] == 9
    assert status["queue"]["runs"]["r1"]["granted"] == 1
