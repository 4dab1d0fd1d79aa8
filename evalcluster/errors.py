"""The exception hierarchy of evalcluster.

Every error the package raises on purpose is one of these::

    EvalclusterError
    ├── SpecError                  a suite, providers file or option is invalid (CLI exit 2)
    ├── StoreError                 the results lake could not be read or written
    │   └── NotFoundError          no such object, run, suite or suite version (HTTP 404)
    ├── TrackingError              MLflow logging failed (results are already in the lake)
    ├── UnknownRunError            the run is not live in the cluster's run registry
    └── ProviderError              a call to a model provider did not produce an answer
        ├── RateLimitedError       429 and friends; carries the provider's retry delay
        ├── OverloadedError        the provider is busy (Anthropic 529, OpenAI 503 "overloaded")
        ├── ServerError            5xx
        ├── ProviderTimeoutError   no answer within the timeout
        ├── ProviderConnectionError  refused, reset or dropped connection
        ├── ProtocolError          the body is not what the wire format promises
        ├── AuthError              401/403, Gemini's 400 API_KEY_INVALID: never retried
        ├── BadRequestError        4xx the request itself caused: never retried
        │   └── ContextLengthError the prompt does not fit the model's context
        ├── ContentFilteredError   the provider refused the request on policy grounds
        ├── QuotaExhaustedError    out of credits or daily quota: never retried
        ├── CircuitOpenError       the endpoint's breaker is open and there is no fallback
        │   └── EndpointDownError  the endpoint cannot be reached at all (refused, no such host)
        └── RequestTooLargeError   one request's estimate exceeds the whole token limit

`ProviderError.kind` is the value written to the results' `error_kind` column.
Messages never contain API keys: adapters build them from status codes and cut bodies only.
"""

from __future__ import annotations


class EvalclusterError(Exception):
    """Base of every error evalcluster raises on purpose."""


class SpecError(EvalclusterError):
    """A suite file, providers file or command-line option is invalid.

    `location` names the file and `field` the dotted path of the offending value, so the
    one-line message says exactly what to fix: ``suite.yaml: dataset.path: file not found: x``.
    """

    def __init__(self, message: str, *, field: str | None = None, location: str | None = None):
        self.message = message
        self.field = field
        self.location = location
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = [p for p in (self.location, self.field) if p]
        return ": ".join([*parts, self.message])


class StoreError(EvalclusterError):
    """The results lake could not be read or written."""


class NotFoundError(StoreError):
    """The store has no such object, run, suite or suite version."""


class TrackingError(EvalclusterError):
    """Logging to MLflow failed; the results in the lake are not affected."""


class UnknownRunError(EvalclusterError):
    """The run is not live: never opened, already closed, or lost with a restarted registry."""


class ProviderError(EvalclusterError):
    """A provider call failed. Subclasses say how; `retryable` says whether waiting may help."""

    kind: str = "provider_error"
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status: int | None = None,
        retry_after_s: float | None = None,
        should_retry: bool | None = None,
    ):
        self.message = message
        self.provider = provider
        self.status = status
        self.retry_after_s = retry_after_s
        # The provider's own verdict (`x-should-retry: true|false`), None when it sent none.
        self.should_retry = should_retry
        if should_retry is not None and not isinstance(type(self).retryable, property):
            self.retryable = should_retry  # the provider's verdict wins over the class default
        super().__init__(message)

    def __str__(self) -> str:
        prefix = f"{self.provider}: " if self.provider else ""
        status = f"HTTP {self.status}: " if self.status is not None else ""
        return f"{prefix}{status}{self.message}"

    def __reduce__(self):  # keep keyword-only fields across Ray's pickling
        return (
            _rebuild_provider_error,
            (
                type(self),
                self.message,
                self.provider,
                self.status,
                self.retry_after_s,
                self.should_retry,
            ),
        )


def _rebuild_provider_error(cls, message, provider, status, retry_after_s, should_retry=None):
    return cls(
        message,
        provider=provider,
        status=status,
        retry_after_s=retry_after_s,
        should_retry=should_retry,
    )


class RateLimitedError(ProviderError):
    kind = "rate_limited"
    retryable = True


class OverloadedError(ProviderError):
    kind = "overloaded"
    retryable = True


class ServerError(ProviderError):
    kind = "server_error"
    retryable = True


class ProviderTimeoutError(ProviderError):
    kind = "timeout"
    retryable = True


class ProviderConnectionError(ProviderError):
    kind = "connection"
    retryable = True


class ProtocolError(ProviderError):
    """Invalid JSON, an HTML error page, an empty body. Retryable only when the status was 5xx."""

    kind = "protocol"

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        if self.should_retry is not None:
            return self.should_retry
        return self.status is None or self.status >= 500


class AuthError(ProviderError):
    kind = "auth"


class BadRequestError(ProviderError):
    kind = "bad_request"


class ContextLengthError(BadRequestError):
    kind = "context_length"


class ContentFilteredError(ProviderError):
    kind = "content_filter"


class QuotaExhaustedError(ProviderError):
    kind = "quota"


class CircuitOpenError(ProviderError):
    kind = "circuit_open"
    retryable = True


class EndpointDownError(CircuitOpenError):
    """The breaker opened on connection failures (refused, host not found) and a probe failed
    to connect too: requests without a fallback end at once instead of waiting for it."""

    kind = "endpoint_down"


class RequestTooLargeError(ProviderError):
    kind = "request_too_large"
