"""Retries of failed provider calls: exponential backoff with full jitter, via tenacity.

Guarantees:

* Every decision is a value: `decide(exc, attempt, elapsed, config)` returns a
  `RetryDecision` (no / transient(delay) / rate_limit(after)); `call_with_retries` only wires
  it into tenacity, so what is retried and for how long is unit-testable without sleeping.
* Never retried: errors whose `retryable` is False (auth, bad request, context length, quota,
  content filter), anything that is not a `ProviderError`, and cancellation. An error's
  `should_retry` attribute, when set (from the `x-should-retry` response header that OpenAI
  and Anthropic send), overrides `retryable` either way.
* The provider's own delay (`retry_after_s`) is honoured: the wait is at least that long. A
  delay longer than `max_retry_after_s` is not slept through (that would hold a worker asleep);
  the request gives up with the error instead.
* At most `max_attempts` attempts, and no retry whose wait would end past `max_total_s` from
  the first attempt.
* The number of attempts comes back with the value (`Attempted`), and is set as `attempts` on
  the error finally raised.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from tenacity import AsyncRetrying, RetryCallState

from evalcluster.errors import ProviderError, RateLimitedError
from evalcluster.limits.clock import Clock, Sleep
from evalcluster.suite.models import RetryConfig

T = TypeVar("T")

RetryAction = Literal["no", "transient", "rate_limit"]


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Whether to retry after a failed attempt, after how long, and why."""

    action: RetryAction
    delay_s: float = 0.0
    reason: str = ""

    @classmethod
    def no(cls, reason: str) -> RetryDecision:
        return cls("no", 0.0, reason)

    @classmethod
    def transient(cls, delay_s: float, reason: str = "") -> RetryDecision:
        return cls("transient", delay_s, reason)

    @classmethod
    def rate_limit(cls, after_s: float, reason: str = "") -> RetryDecision:
        return cls("rate_limit", after_s, reason)

    @property
    def retry(self) -> bool:
        return self.action != "no"


@dataclass(frozen=True, slots=True)
class Attempted(Generic[T]):
    """A call's value and how many attempts it took (1 = no retry)."""

    value: T
    attempts: int


def backoff_ceiling(attempt: int, config: RetryConfig) -> float:
    """The largest backoff after failed attempt `attempt` (1-based): base * 2**(attempt-1),
    capped at max_delay_s."""
    exponent = min(attempt - 1, 62)  # keep 2**n finite for absurd attempt counts
    return min(config.max_delay_s, config.base_delay_s * 2.0**exponent)


def is_retryable(exc: BaseException) -> bool:
    """`retryable`, overridden by `should_retry` when the provider said so explicitly."""
    if not isinstance(exc, ProviderError):
        return False
    should_retry = getattr(exc, "should_retry", None)
    if should_retry is not None:
        return bool(should_retry)
    return bool(exc.retryable)


def decide(
    exc: BaseException,
    attempt: int,
    elapsed: float,
    config: RetryConfig,
    *,
    rand: Callable[[], float] = random.random,
) -> RetryDecision:
    """Decide what to do after attempt number `attempt` (1-based) failed with `exc`,
    `elapsed` seconds after the first attempt started. `rand` draws the jitter in [0, 1)."""
    if not isinstance(exc, ProviderError):
        return RetryDecision.no(f"{type(exc).__name__} is not a provider error")
    if not is_retryable(exc):
        return RetryDecision.no(f"{exc.kind} errors are not retried")
    if attempt >= config.max_attempts:
        return RetryDecision.no(f"gave up after {attempt} attempts (max_attempts)")
    retry_after = exc.retry_after_s
    if retry_after is not None and retry_after > config.max_retry_after_s:
        return RetryDecision.no(
            f"provider asked to wait {retry_after:g}s, longer than max_retry_after_s "
            f"({config.max_retry_after_s:g}s)"
        )
    # Full jitter (a uniform draw below the exponential ceiling) spreads the retries of many
    # callers that failed together instead of having them return in lockstep.
    delay = rand() * backoff_ceiling(attempt, config)
    if retry_after is not None:
        delay = max(delay, retry_after)
    if elapsed + delay > config.max_total_s:
        return RetryDecision.no(
            f"a retry in {delay:.2f}s would pass max_total_s ({config.max_total_s:g}s)"
        )
    if isinstance(exc, RateLimitedError):
        return RetryDecision.rate_limit(delay, f"rate limited; retry in {delay:.2f}s")
    return RetryDecision.transient(delay, f"{exc.kind}; retry in {delay:.2f}s")


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    config: RetryConfig,
    *,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.monotonic,
    rand: Callable[[], float] = random.random,
) -> Attempted[T]:
    """Call `fn` until it succeeds or `decide` says stop; return its value and attempt count.

    On final failure the last error is raised with `attempts` set on it.
    """
    started = clock()
    # Fast path: most calls succeed at once, and tenacity's per-call machinery (state objects,
    # wrapped callbacks) cost about a quarter of the provider actor's time per request. Only a
    # failed first attempt enters tenacity, which is handed that failure as its attempt 1.
    try:
        return Attempted(await fn(), 1)
    except Exception as exc:  # noqa: BLE001 - every failure goes to decide(), which may re-raise
        first_error: Exception | None = exc
    decisions: dict[int, RetryDecision] = {}

    def decision_for(state: RetryCallState) -> RetryDecision:
        if state.attempt_number not in decisions:
            assert state.outcome is not None
            error = state.outcome.exception()
            decisions[state.attempt_number] = decide(
                error, state.attempt_number, clock() - started, config, rand=rand
            )
        return decisions[state.attempt_number]

    def retry(state: RetryCallState) -> bool:
        return bool(state.outcome and state.outcome.failed and decision_for(state).retry)

    def wait(state: RetryCallState) -> float:
        return decision_for(state).delay_s

    def stop(state: RetryCallState) -> bool:
        # decide() already applies both caps; this keeps tenacity's own view consistent.
        return not decision_for(state).retry

    attempts = 1

    async def attempt() -> T:
        nonlocal attempts, first_error
        if first_error is not None:  # replay the fast path's failure as attempt 1
            error, first_error = first_error, None
            raise error
        attempts += 1
        return await fn()

    retrying = AsyncRetrying(sleep=sleep, retry=retry, wait=wait, stop=stop, reraise=True)
    try:
        value = await retrying(attempt)
    except Exception as exc:
        exc.attempts = attempts  # type: ignore[attr-defined]
        raise
    return Attempted(value, attempts)
