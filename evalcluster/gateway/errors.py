"""Gateway failures as OpenAI error answers: ``{"error": {"message", "type", "code", "param"}}``
with the status the official SDK acts on (platform.openai.com/docs/guides/error-codes).

The SDK retries 408, 409, 429 and 5xx, honouring ``Retry-After``. So a 429 means "wait"
(the endpoint is paused by its provider, `Retry-After` says how long); a spent gateway budget
is also 429, as OpenAI's own `insufficient_quota` is, with a message that says waiting will not
help before the next UTC day and ``x-should-retry: false``, which the official SDKs obey. A
provider down after its fallbacks is 503 with ``Retry-After``;
other upstream failures that outlived the actor's retries are 502/504; the operator's key being
refused is 502, never 401 (the client's key was fine).
"""

from __future__ import annotations

import math
from typing import Any

from fastapi.responses import JSONResponse

_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class GatewayError(Exception):
    """An answer the gateway gives instead of a completion."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,  # noqa: A002 - OpenAI's field name
        code: str | None = None,
        param: str | None = None,
        retry_after_s: float | None = None,
        error_kind: str | None = None,
        should_retry: bool | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or _TYPES.get(status, "api_error")
        self.code = code
        self.param = param
        self.retry_after_s = retry_after_s
        self.error_kind = error_kind or f"http_{status}"
        self.should_retry = should_retry

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "code": self.code,
                "param": self.param,
            }
        }

    def anthropic_body(self) -> dict[str, Any]:
        """The same error in Anthropic's shape (docs.anthropic.com/en/api/errors)."""
        kind = _ANTHROPIC_TYPES.get(self.status, "api_error")
        if self.status == 503 and self.error_kind == "overloaded":
            kind = "overloaded_error"
        return {"type": "error", "error": {"type": kind, "message": self.message}}

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.retry_after_s is not None:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after_s)))
        if self.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if self.should_retry is not None:  # the official SDKs obey it over their own rules
            headers["x-should-retry"] = "true" if self.should_retry else "false"
        return headers

    def response(self, shape: str = "openai") -> JSONResponse:
        """The answer, in OpenAI's shape or (`shape="anthropic"`) Anthropic's."""
        body = self.anthropic_body() if shape == "anthropic" else self.body()
        return JSONResponse(body, status_code=self.status, headers=self.headers())


# Anthropic's error types by status; its SDK picks the exception class by status alone.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}

# The gateway's paths (below the app's root path) and the error shape each answers in; the
# service's middleware asks `error_shape` so its 413 and 503 read like the route's own errors.
ERROR_SHAPES = {
    "/v1/chat/completions": "openai",
    "/v1/models": "openai",
    "/v1/gateway/usage": "openai",
    "/v1/messages": "anthropic",
}


def error_shape(path: str, root_path: str = "") -> str | None:
    """ "openai" or "anthropic" for a gateway path, None for the service's other paths."""
    found = ERROR_SHAPES.get(path)
    if found is None and root_path and path.startswith(root_path):
        found = ERROR_SHAPES.get(path[len(root_path) :])
    return found


DOWN_RETRY_AFTER_S = 5.0


def provider_failure(
    kind: str, route: str, error: str | None, retry_after_s: float | None
) -> GatewayError:
    """The answer for a call the provider actor ended with `kind` (its `error_kind`)."""
    detail = (error or "").strip()
    if kind == "rate_limited":
        return GatewayError(
            429,
            f"route {route!r} is paused by its provider's rate limit; retry after the delay "
            "in Retry-After",
            code="rate_limit_exceeded",
            retry_after_s=retry_after_s or DOWN_RETRY_AFTER_S,
            error_kind=kind,
        )
    if kind in ("circuit_open", "endpoint_down", "overloaded", "connection", "unavailable"):
        return GatewayError(
            503,
            f"route {route!r}: its provider is unavailable ({kind}) after every fallback",
            type="server_error",
            code=kind,
            retry_after_s=retry_after_s or DOWN_RETRY_AFTER_S,
            error_kind=kind,
        )
    if kind in ("bad_request", "context_length", "content_filter", "request_too_large"):
        code = {"context_length": "context_length_exceeded",
                "content_filter": "content_policy_violation"}.get(kind, kind)  # fmt: skip
        return GatewayError(400, detail or kind, code=code, error_kind=kind)
    if kind == "timeout":
        return GatewayError(
            504, f"route {route!r}: the provider did not answer in time", type="server_error",
            code=kind, error_kind=kind,
        )  # fmt: skip
    if kind == "auth":
        message = f"route {route!r}: the provider refused the gateway's credentials"
    elif kind == "quota":
        message = f"route {route!r}: the provider account's quota is exhausted"
    else:
        message = f"route {route!r}: the provider failed ({kind})"
    return GatewayError(502, message, type="server_error", code=kind, error_kind=kind)
