"""Requests-per-minute and tokens-per-minute limits for one provider endpoint.

Guarantees of `DualTokenBucket`:

* Spread, not bursts: each bucket holds at most `burst_s` seconds' worth of its rate (never a
  whole minute) and refills continuously, so N requests at R per minute take about N/R minutes
  once the initial burst is spent.
* FIFO: waiters are granted strictly in arrival order; a large request at the head is not
  overtaken by small ones behind it. Waiting costs no CPU: one timer per bucket wakes at the
  moment the head waiter can go.
* Cancellation-safe: a waiter cancelled before or at the instant of its grant takes nothing.
* Tokens are charged up front from an estimate and corrected by `settle` with the provider's
  reported usage. A request larger than the bucket's capacity (but within the per-minute limit)
  goes when the bucket is full and leaves it in debt, so the long-run rate still holds.
* A request whose estimate exceeds the whole tokens-per-minute limit can never be sent and
  raises `RequestTooLargeError` at once.
* Adaptive: a 429 pauses every grant until the time the provider names and lowers the effective
  rate multiplicatively (at most once per `decrease_interval_s`, to a floor); successes raise it
  back additively to the configured rate.
* Pauses follow the retry policy's ceiling (`max_pause_s`, the actor passes
  `max_retry_after_s`): a pause the provider asks for is kept (nothing is sent before it ends),
  but no caller sleeps through more than `max_pause_s` of it. While more than that is left,
  `acquire` raises `RateLimitedError` at once (retry_after_s = what is left), and callers
  already queued when such a pause begins get it too. Once what is left fits the ceiling,
  callers wait as usual. `pause()` says until when, why, and whether callers wait or fail.

Not thread-safe: use one instance from one event loop (the endpoint actor's).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evalcluster.errors import RateLimitedError, RequestTooLargeError
from evalcluster.limits.clock import Clock, Sleep

if TYPE_CHECKING:
    from evalcluster.providers.base import RateLimitSnapshot

# Levels within this of what is needed count as enough: refill arithmetic in floats lands a
# hair short of the exact amount at the exact deadline.
_EPSILON = 1e-9


@dataclass(slots=True)
class Reservation:
    """One grant: one request and `tokens` estimated tokens, charged at `granted_at`."""

    id: int
    tokens: int
    granted_at: float
    settled: bool = field(default=False, compare=False)


@dataclass(slots=True)
class _Waiter:
    tokens: int
    future: asyncio.Future[Reservation]


class _Bucket:
    """One continuously refilling bucket. The level may go negative (debt) but never above
    capacity."""

    __slots__ = ("burst_s", "capacity", "level", "rate", "updated")

    def __init__(self, per_minute: float, burst_s: float, now: float) -> None:
        self.burst_s = burst_s
        self.updated = now
        self.rate = per_minute / 60.0
        self.capacity = self._capacity()
        self.level = self.capacity

    def _capacity(self) -> float:
        # At least one unit, or a slow limit (rpm 10 -> 0.17 per second) could never grant.
        return max(1.0, self.rate * self.burst_s)

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def set_rate(self, per_minute: float, now: float) -> None:
        self.refill(now)
        self.rate = per_minute / 60.0
        self.capacity = self._capacity()
        self.level = min(self.level, self.capacity)

    def wait_s(self, amount: float) -> float:
        """Seconds until `amount` may be taken (an amount over capacity needs a full bucket)."""
        deficit = min(amount, self.capacity) - self.level
        return 0.0 if deficit <= _EPSILON else deficit / self.rate

    def give(self, amount: float) -> None:
        self.level = min(self.capacity, self.level + amount)


class DualTokenBucket:
    """Requests-per-minute and tokens-per-minute limits shared by every caller of one endpoint.

    `rpm`/`tpm` of None mean unlimited. `clock` and `sleep` are injectable for tests (see
    `evalcluster.limits.clock.ManualClock`).
    """

    def __init__(
        self,
        rpm: float | None,
        tpm: float | None,
        *,
        burst_s: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        decrease_factor: float = 0.7,
        min_fraction: float = 0.1,
        decrease_interval_s: float = 5.0,
        recovery_step: float = 0.02,
        provider: str | None = None,
        max_pause_s: float | None = None,
        wall_clock: Clock = time.time,
    ) -> None:
        for label, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None and not value > 0:
                raise ValueError(f"{label} must be positive or None (unlimited), got {value}")
        if not burst_s > 0:
            raise ValueError(f"burst_s must be positive, got {burst_s}")
        if not 0 < decrease_factor < 1:
            raise ValueError(f"decrease_factor must be in (0, 1), got {decrease_factor}")
        if not 0 < min_fraction <= 1:
            raise ValueError(f"min_fraction must be in (0, 1], got {min_fraction}")
        if max_pause_s is not None and max_pause_s < 0:
            raise ValueError(f"max_pause_s must be >= 0 or None, got {max_pause_s}")
        self._max_pause_s = max_pause_s
        self._wall_clock = wall_clock
        self._pause_reason = ""
        self._rpm = rpm
        self._tpm = tpm
        self._clock = clock
        self._sleep = sleep
        self._decrease_factor = decrease_factor
        self._min_fraction = min_fraction
        self._decrease_interval_s = decrease_interval_s
        self._recovery_step = recovery_step
        self._provider = provider
        now = clock()
        self._requests = _Bucket(rpm, burst_s, now) if rpm is not None else None
        self._tokens = _Bucket(tpm, burst_s, now) if tpm is not None else None
        self._fraction = 1.0
        self._paused_until = -math.inf
        self._last_decrease = -math.inf
        self._waiters: deque[_Waiter] = deque()
        self._timer: asyncio.Task[None] | None = None
        self._timer_at = math.inf
        self._ids = itertools.count(1)

    # -- granting ---------------------------------------------------------------------------

    async def acquire(self, tokens: int) -> Reservation:
        """Wait until one request and `tokens` estimated tokens may go, and charge them.

        Raises RequestTooLargeError at once when `tokens` exceeds the whole tokens-per-minute
        limit. Pass the returned reservation to `settle` when the provider reports usage.
        """
        if tokens < 0:
            raise ValueError(f"tokens must be >= 0, got {tokens}")
        if self._tpm is not None and tokens > self._tpm:
            raise RequestTooLargeError(
                f"request needs an estimated {tokens} tokens but the limit is {self._tpm:g} "
                "tokens per minute, so it can never be sent; shorten the prompt or lower "
                "max_tokens",
                provider=self._provider,
            )
        now = self._clock()
        self._check_pause(now)
        if not self._waiters and self._wait_s(tokens, now) == 0.0:
            return self._grant(tokens, now)
        future: asyncio.Future[Reservation] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(tokens, future)
        self._waiters.append(waiter)
        self._schedule()
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                # Granted in the same instant we were cancelled: hand everything back.
                self.release(future.result())
            else:
                with contextlib.suppress(ValueError):  # already dropped by _schedule
                    self._waiters.remove(waiter)
                self._schedule()
            raise

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Correct a reservation's token charge by the provider-reported usage.

        Fewer tokens than estimated are refunded; more are debited (the bucket may go into
        debt, which later grants wait out).
        """
        if reservation.settled:
            raise ValueError(f"reservation {reservation.id} is already settled")
        reservation.settled = True
        if self._tokens is None:
            return
        now = self._clock()
        self._tokens.refill(now)
        delta = actual_tokens - reservation.tokens
        if delta > 0:
            self._tokens.level -= delta
        elif delta < 0:
            self._tokens.give(-delta)
            self._schedule()

    def release(self, reservation: Reservation) -> None:
        """Give back a reservation whose request was never sent (its request and tokens)."""
        if reservation.settled:
            raise ValueError(f"reservation {reservation.id} is already settled")
        reservation.settled = True
        now = self._clock()
        for bucket, amount in ((self._requests, 1), (self._tokens, reservation.tokens)):
            if bucket is not None:
                bucket.refill(now)
                bucket.give(amount)
        self._schedule()

    # -- adapting to the provider -----------------------------------------------------------

    def pause_until(self, deadline: float, reason: str = "") -> bool:
        """Grant nothing before `deadline` (a time on this bucket's clock); `reason` is shown
        by `pause()`. Returns whether the pause was extended. Queued callers that would wait
        longer than `max_pause_s` get `RateLimitedError` at once."""
        if deadline <= self._paused_until:
            return False
        self._paused_until = deadline
        self._pause_reason = reason
        now = self._clock()
        if self._over_ceiling(now):
            error = self._pause_error(now)
            waiters, self._waiters = self._waiters, deque()
            for waiter in waiters:
                if not waiter.future.done():
                    waiter.future.set_exception(error)
        # A timer armed for an earlier moment fires, finds the pause and re-arms itself.
        self._schedule()
        return True

    def pause(self) -> dict[str, Any] | None:
        """The pause in effect, for status displays: `until` (wall time), `for_s` (left),
        `reason`, and `waits` (False: callers end as rate limited instead of waiting, because
        more than `max_pause_s` is left). None when not paused."""
        now = self._clock()
        left = self._paused_until - now
        if left <= 0:
            return None
        return {
            "until": self._wall_clock() + left,
            "for_s": left,
            "reason": self._pause_reason,
            "waits": not self._over_ceiling(now),
            "max_pause_s": self._max_pause_s,
        }

    def on_rate_limited(self, retry_after_s: float | None = None) -> bool:
        """React to a 429: pause for `retry_after_s` when the provider names it, and lower the
        effective rate by `decrease_factor` unless it was lowered within the last
        `decrease_interval_s` (one window's burst of 429s is one signal). Returns whether the
        rate was lowered."""
        now = self._clock()
        if retry_after_s is not None and retry_after_s > 0:
            reason = f"rate limited (429): retry after {retry_after_s:g}s"
            self.pause_until(now + retry_after_s, reason)
        if now - self._last_decrease < self._decrease_interval_s:
            return False
        self._last_decrease = now
        lowered = max(self._min_fraction, self._fraction * self._decrease_factor)
        changed = lowered < self._fraction
        self._set_fraction(lowered, now)
        return changed

    def on_success(self) -> None:
        """Raise the effective rate by `recovery_step` of the configured rate, up to it.

        Successes while paused or within `decrease_interval_s` of a decrease are ignored: they
        are mostly answers to requests sent before the provider pushed back.
        """
        now = self._clock()
        if self._fraction >= 1.0 or now < self._paused_until:
            return
        if now - self._last_decrease < self._decrease_interval_s:
            return
        self._set_fraction(min(1.0, self._fraction + self._recovery_step), now)

    def observe(self, snapshot: RateLimitSnapshot) -> None:
        """Use the provider's rate-limit headers: nothing remaining with a reset time pauses
        grants until that reset."""
        now = self._clock()
        for what, remaining, reset_s in (
            ("requests", snapshot.remaining_requests, snapshot.reset_requests_s),
            ("tokens", snapshot.remaining_tokens, snapshot.reset_tokens_s),
        ):
            if remaining is not None and remaining <= 0 and reset_s is not None and reset_s > 0:
                self.pause_until(
                    now + reset_s, f"no {what} remaining: the limit resets in {reset_s:g}s"
                )

    def conservative_start(self, factor: float) -> None:
        """Begin at `factor` of the configured rate (not below the floor) with empty buckets,
        so an actor restarted after a crash neither bursts nor runs at full rate at once;
        successes then recover the rate as usual."""
        if not 0 < factor <= 1:
            raise ValueError(f"factor must be in (0, 1], got {factor}")
        now = self._clock()
        self._set_fraction(max(self._min_fraction, factor), now)
        for bucket in (self._requests, self._tokens):
            if bucket is not None:
                bucket.level = min(bucket.level, 0.0)

    # -- status -----------------------------------------------------------------------------

    @property
    def rate_fraction(self) -> float:
        """The effective rate as a fraction of the configured one."""
        return self._fraction

    @property
    def waiters(self) -> int:
        """Callers waiting in `acquire`."""
        return sum(1 for w in self._waiters if not w.future.done())

    def headroom(self) -> dict[str, Any]:
        """What could go now and at what rate, for status displays. None means unlimited."""
        now = self._clock()
        available: dict[str, float | None] = {}
        for key, bucket in (("requests", self._requests), ("tokens", self._tokens)):
            if bucket is None:
                available[key] = None
            else:
                bucket.refill(now)
                available[key] = max(0.0, bucket.level)
        paused = self._paused_until > now
        return {
            "available_requests": available["requests"],
            "available_tokens": available["tokens"],
            "rpm": None if self._rpm is None else self._rpm * self._fraction,
            "tpm": None if self._tpm is None else self._tpm * self._fraction,
            "configured_rpm": self._rpm,
            "configured_tpm": self._tpm,
            "rate_fraction": self._fraction,
            "paused_until": self._paused_until if paused else None,
            "paused_for_s": self._paused_until - now if paused else 0.0,
            "waiters": self.waiters,
        }

    # -- internals --------------------------------------------------------------------------

    def _over_ceiling(self, now: float) -> bool:
        return self._max_pause_s is not None and self._paused_until - now > self._max_pause_s

    def _pause_error(self, now: float) -> RateLimitedError:
        left = self._paused_until - now
        reason = f" ({self._pause_reason})" if self._pause_reason else ""
        return RateLimitedError(
            f"endpoint paused for {left:.0f}s more{reason}, longer than max_retry_after_s "
            f"({self._max_pause_s:g}s): not waited for",
            provider=self._provider,
            retry_after_s=left,
            should_retry=False,
        )

    def _check_pause(self, now: float) -> None:
        if self._over_ceiling(now):
            raise self._pause_error(now)

    def _set_fraction(self, fraction: float, now: float) -> None:
        self._fraction = fraction
        if self._requests is not None and self._rpm is not None:
            self._requests.set_rate(self._rpm * fraction, now)
        if self._tokens is not None and self._tpm is not None:
            self._tokens.set_rate(self._tpm * fraction, now)
        self._schedule()

    def _wait_s(self, tokens: int, now: float) -> float:
        """Seconds until one request of `tokens` may be granted (0.0 = now)."""
        wait = max(0.0, self._paused_until - now)
        if self._requests is not None:
            self._requests.refill(now)
            wait = max(wait, self._requests.wait_s(1))
        if self._tokens is not None:
            self._tokens.refill(now)
            wait = max(wait, self._tokens.wait_s(tokens))
        return wait

    def _grant(self, tokens: int, now: float) -> Reservation:
        if self._requests is not None:
            self._requests.level -= 1
        if self._tokens is not None:
            self._tokens.level -= tokens
        return Reservation(next(self._ids), tokens, now)

    def _schedule(self) -> None:
        """Grant every head waiter that fits now; arm one timer for the next one."""
        now = self._clock()
        wait = 0.0
        while self._waiters:
            head = self._waiters[0]
            if head.future.done():  # cancelled while queued
                self._waiters.popleft()
                continue
            wait = self._wait_s(head.tokens, now)
            if wait > 0.0:
                break
            self._waiters.popleft()
            head.future.set_result(self._grant(head.tokens, now))
        if not self._waiters:
            self._cancel_timer()
            return
        deadline = now + wait
        if self._timer is not None and self._timer_at <= deadline:
            return  # an earlier timer fires first and re-arms for the right moment
        self._cancel_timer()
        self._timer_at = deadline
        self._timer = asyncio.get_running_loop().create_task(self._wake_after(wait))

    async def _wake_after(self, delay: float) -> None:
        await self._sleep(delay)
        self._timer = None
        self._timer_at = math.inf
        self._schedule()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = math.inf
