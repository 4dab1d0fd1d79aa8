"""One example of each way a provider call fails, by whether waiting may help: the same split
the error classes' `retryable` make, which retries (`limits/retry.py`) and the circuit breaker
(`limits/breaker.py`) act on. Tests of any of them take their cases from here, so a new error
class is added in one place.

Not in either list: `RateLimitedError` (retried after the provider's delay, yet not the
endpoint's failure) and `CircuitOpenError` (the breaker's own answer)."""

from __future__ import annotations

from evalcluster.errors import (
    AuthError,
    BadRequestError,
    ContentFilteredError,
    ContextLengthError,
    OverloadedError,
    ProtocolError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExhaustedError,
    RequestTooLargeError,
    ServerError,
)

# The endpoint failed: another try later may get an answer.
TRANSIENT: tuple[ProviderError, ...] = (
    ServerError("internal error", status=500),
    OverloadedError("busy", status=529),
    ProviderTimeoutError("no answer in time"),
    ProviderConnectionError("connection refused"),
    ProtocolError("an HTML page instead of JSON", status=502),
    ProtocolError("the stream dropped", status=None),
)

# The request (or the account) is at fault: the same request fails the same way again.
FINAL: tuple[ProviderError, ...] = (
    AuthError("invalid key", status=401),
    BadRequestError("bad parameter", status=400),
    ContextLengthError("prompt too long", status=400),
    ContentFilteredError("refused by the filter", status=400),
    QuotaExhaustedError("no credits left", status=429),
    ProtocolError("not JSON", status=400),
    RequestTooLargeError("body over the limit"),
)


def case_id(error: ProviderError) -> str:
    """A pytest id for an example: its class and status."""
    return f"{type(error).__name__}-{error.status}"
