"""One provider endpoint's request path: fair queue -> breaker -> token bucket -> send window ->
in-flight slot -> the send, with retries around the whole attempt.

`EndpointPipeline` is plain asyncio (no Ray, no metrics, no store): the provider actor
(`actors/provider.py`) wraps it with fallbacks, batch lanes, pricing, metrics and status, and
the in-process executor runs that same actor class outside Ray. Time is injectable (`clock`,
`sleep`, `wall_clock`, `rand`) so tests drive it on `limits.clock.ManualClock`.

Order of one attempt, and why:

1. The breaker (`CircuitBreaker.allow`). Open: a request that may fall back gets `BreakerOpen`
   at once (its owner sends it elsewhere); one that may not waits for a probe, at most
   `breaker.max_wait_s`, or ends at once as `endpoint_down` while the endpoint is down.
2. The run's fair turn (`WeightedFairQueue`, one holder at a time), held while it waits for the
   token bucket and the send window, so the bucket sees its waiters in fair order.
3. If the breaker left `closed` while the request queued (and it is not the probe), the
   reservation is given back and the request asks the breaker again: a queue admitted while the
   endpoint looked healthy must not all go out after it fell over.
4. A concurrency slot (`max_concurrency`), then `send()`.

Failing fast instead of hanging:

* Endpoint down. When connection failures (refused, host not found) open the breaker, a probe
  follows after `breaker.down_probe_s`; if it cannot connect either, the endpoint is down: every
  request waiting without a fallback ends at once with `EndpointDownError` (not retried), and so
  does every new one while the breaker stays open.
* Provider pauses (429 `retry-after`, or rate-limit headers with nothing remaining) follow the
  retry policy's `max_retry_after_s`: nothing is sent before the pause ends, but while more than
  that is left, requests end at once as `rate_limited` instead of waiting.
* A warning goes to `logger` when the breaker opens, when the endpoint is found down, when a
  probe closes the breaker, and when a pause of `LONG_PAUSE_LOG_S` or more begins (endpoint
  name, failure kind and message, never a key).

Not thread-safe: one event loop drives an instance.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from evalcluster.errors import (
    CircuitOpenError,
    EndpointDownError,
    ProviderError,
    RateLimitedError,
)
from evalcluster.limits.breaker import BreakerState, CircuitBreaker
from evalcluster.limits.bucket import DualTokenBucket, Reservation
from evalcluster.limits.clock import Clock, Sleep
from evalcluster.limits.fair import WeightedFairQueue
from evalcluster.limits.retry import Attempted, call_with_retries
from evalcluster.limits.window import SendWindow
from evalcluster.suite.models import ProviderConfig

if TYPE_CHECKING:
    from evalcluster.providers.base import Completion

LONG_PAUSE_LOG_S = 10.0  # a provider pause at least this long is logged

log = logging.getLogger(__name__)

Send = Callable[[], Awaitable["Completion"]]


class BreakerOpen(Exception):
    """The breaker refused a request that may fall back: its owner sends it elsewhere.

    A signal between the pipeline and its owner, never a request's outcome."""


def _ignore(_: Any) -> None:
    return None


class EndpointPipeline:
    """The limits, breaker and retries of one endpoint, shared by every caller of it.

    `on_breaker_state` is called with the breaker's state whenever it is seen to change (and
    once on `report_breaker`); `on_failure` with each failed attempt's `ProviderError`. Both
    are for the owner's metrics and must not raise.
    """

    def __init__(
        self,
        name: str,
        config: ProviderConfig,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        wall_clock: Clock = time.time,
        rand: Callable[[], float] = random.random,
        on_breaker_state: Callable[[BreakerState], None] = _ignore,
        on_failure: Callable[[ProviderError], None] = _ignore,
        logger: logging.Logger = log,
    ) -> None:
        self.name = name
        self.retry = config.retry
        self.bucket = DualTokenBucket(
            config.rpm,
            config.tpm,
            burst_s=config.burst_s,
            provider=name,
            max_pause_s=config.retry.max_retry_after_s,
            clock=clock,
            sleep=sleep,
            wall_clock=wall_clock,
        )
        self.window = SendWindow(config.rpm, config.burst_s, clock=clock, sleep=sleep)
        self.breaker = CircuitBreaker.from_config(
            config.breaker, clock=clock, sleep=sleep, wall_clock=wall_clock
        )
        self.fair = WeightedFairQueue()
        self.slots = asyncio.Semaphore(config.max_concurrency)
        self.in_flight = 0
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._on_breaker_state = on_breaker_state
        self._on_failure = on_failure
        self._log = logger
        self._reported_breaker: BreakerState | None = None

    # -- the request path -------------------------------------------------------------------

    async def call(
        self,
        queue: str,
        send: Send,
        *,
        tokens: int,
        priority: float = 1.0,
        can_fall_back: bool = False,
    ) -> Attempted[Completion]:
        """Send one request through the pipeline, retrying as the retry policy allows.

        `queue` is the fair queue's run (or tenant) with weight `priority`; `tokens` the
        request's estimated size for the token bucket; `send` makes one attempt (the adapter's
        call). Raises `BreakerOpen` when the breaker refuses and `can_fall_back`, else the last
        `ProviderError` with `attempts` set on it."""
        return await call_with_retries(
            lambda: self._attempt(queue, send, tokens, priority, can_fall_back),
            self.retry,
            sleep=self._sleep,
            clock=self._clock,
            rand=self._rand,
        )

    async def _attempt(
        self, queue: str, send: Send, tokens: int, priority: float, can_fall_back: bool
    ) -> Completion:
        while True:
            await self._pass_breaker(can_fall_back)
            probe = self.breaker.state == "half_open"  # allow() took a probe slot for us
            self.report_breaker()
            try:
                reservation = await self._reserve(queue, priority, tokens, probe)
            except BaseException:
                if probe:
                    self.breaker.release_probe()
                raise
            if reservation is not None:
                break
            # The breaker opened while this request queued for the rate: it was not sent and
            # took nothing; it asks the breaker again (fallback, or wait for the probe).
        async with self.slots:
            self.in_flight += 1
            try:
                completion = await send()
            except ProviderError as exc:
                self.bucket.settle(reservation, 0)
                self._failed(exc)
                if probe and self.breaker.down:  # this probe found the endpoint down
                    raise self._down_error() from exc
                raise
            except BaseException:
                self.bucket.release(reservation)
                if probe:
                    self.breaker.release_probe()
                raise
            finally:
                self.in_flight -= 1
        self._succeeded(reservation, completion)
        return completion

    async def _pass_breaker(self, can_fall_back: bool) -> None:
        if self.breaker.allow():
            return
        if can_fall_back:
            raise BreakerOpen()
        # No fallback: wait (bounded) for the half-open probe rather than fail the request at
        # once, unless the endpoint is down.
        try:
            await self.breaker.wait_for_probe()
        except CircuitOpenError as exc:
            exc.provider = self.name
            raise

    async def _reserve(
        self, queue: str, priority: float, tokens: int, probe: bool
    ) -> Reservation | None:
        """Wait for this queue's fair turn, the bucket and the send window.

        None (and nothing taken) when the breaker left `closed` while the request waited and
        it is not the probe (see the module doc, step 3).
        """
        # One waiter at a time reaches the bucket, chosen fairly among the queues waiting. (An
        # explicit release, not `async with fair.turn()`: the generator-based context manager
        # was a visible share of the actor's time per request.)
        turn = await self.fair.wait_turn(queue, priority)
        try:
            reservation = await self.bucket.acquire(tokens)
            if not probe and self.breaker.state != "closed":
                self.bucket.release(reservation)
                return None
            try:
                await self.window.wait()
            except BaseException:
                self.bucket.release(reservation)
                raise
        finally:
            self.fair.release(turn)
        return reservation

    # -- outcomes ---------------------------------------------------------------------------

    def _succeeded(self, reservation: Reservation, completion: Completion) -> None:
        self.bucket.settle(reservation, completion.usage.total_tokens)
        self.bucket.on_success()
        if completion.rate_limits is not None:
            before = self.bucket.pause()
            self.bucket.observe(completion.rate_limits)
            self._log_pause(before)
        was = self.breaker.state
        self.breaker.record_success()
        if was != "closed" and self.breaker.state == "closed":
            self._log.warning(
                "provider %s: a probe succeeded; the circuit breaker closed", self.name
            )
        self.report_breaker()

    def _failed(self, exc: ProviderError) -> None:
        was, was_down = self.breaker.state, self.breaker.down
        self.breaker.record_failure(exc)
        self.report_breaker()
        if was == "closed" and self.breaker.state == "open":
            self._log.warning(
                "provider %s: circuit breaker opened after %d consecutive failures (%s: %s)",
                self.name,
                self.breaker.consecutive_failures,
                exc.kind,
                exc.message[:200],
            )
        elif self.breaker.down and not was_down:
            self._log.warning(
                "provider %s: endpoint down (%s: %s); requests without a fallback end as %s "
                "until a probe succeeds (every %gs)",
                self.name,
                exc.kind,
                exc.message[:200],
                EndpointDownError.kind,
                self.breaker.reset_timeout_s,
            )
        if isinstance(exc, RateLimitedError):
            before = self.bucket.pause()
            self.bucket.on_rate_limited(exc.retry_after_s)
            self._log_pause(before)
        self._on_failure(exc)

    def _down_error(self) -> EndpointDownError:
        error = self.breaker.down_error()
        error.provider = self.name
        return error

    def _log_pause(self, before: dict[str, Any] | None) -> None:
        """Warn once when a long pause begins, or when a pause grows past the ceiling."""
        after = self.bucket.pause()
        if after is None or after["for_s"] < LONG_PAUSE_LOG_S:
            return
        if (
            before is not None
            and before["for_s"] >= LONG_PAUSE_LOG_S
            and before["waits"] == after["waits"]
        ):
            return  # this pause was already reported
        until = time.strftime("%H:%M:%S", time.localtime(after["until"]))
        if after["waits"]:
            self._log.warning(
                "provider %s: paused until %s (%.0fs; %s)",
                self.name,
                until,
                after["for_s"],
                after["reason"],
            )
        else:
            self._log.warning(
                "provider %s: paused until %s (%.0fs; %s), longer than max_retry_after_s "
                "(%gs): requests end as rate_limited until then (resumable later)",
                self.name,
                until,
                after["for_s"],
                after["reason"],
                self.retry.max_retry_after_s,
            )

    # -- state for the owner ----------------------------------------------------------------

    def report_breaker(self) -> None:
        """Call `on_breaker_state` if the breaker's state changed since it was last reported
        (an open breaker turns half-open with time, seen here when next read)."""
        state = self.breaker.state
        if state != self._reported_breaker:
            self._reported_breaker = state
            self._on_breaker_state(state)

    def conservative_start(self, rate_factor: float) -> None:
        """Trust the endpoint only after a probe, at `rate_factor` of the rate (an owner
        restarted after a crash)."""
        self.breaker.force_half_open()
        self.bucket.conservative_start(rate_factor)

    @property
    def probe_interval_s(self) -> float:
        """How long an open breaker waits before its next probe (`reset_timeout_s`)."""
        return self.breaker.reset_timeout_s

    def status(self) -> dict[str, Any]:
        """The pipeline's part of the endpoint's status: the breaker (state, detail, whether
        the endpoint is down and why it opened), the provider's pause ({until, for_s, reason,
        waits}: until is wall time; waits False means requests end as rate_limited), requests
        in flight, the bucket's headroom and the fair queue's turns per run."""
        return {
            "breaker": self.breaker.state,
            "breaker_detail": self.breaker.status(),
            "down": self.breaker.down,
            "breaker_reason": self.breaker.reason,
            "pause": self.bucket.pause(),
            "in_flight": self.in_flight,
            "limiter": self.bucket.headroom(),
            "queue": self.fair.stats(),
        }
