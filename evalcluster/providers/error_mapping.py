"""From an HTTP error response to one `ProviderError` subclass: the parts all formats share.

Each wire format reads its own error body into an `ErrorBody` and picks the class; this module
holds the rules that hold for every provider: status-code defaults, the `x-should-retry`
override, cutting bodies short for messages, and scrubbing keys out of provider text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

from evalcluster.errors import (
    AuthError,
    BadRequestError,
    OverloadedError,
    ProtocolError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExhaustedError,
    RateLimitedError,
    ServerError,
)
from evalcluster.providers.secrets import Secret, redact
from evalcluster.providers.transport import HttpResponse

__all__ = [
    "BODY_SNIPPET_CHARS",
    "ErrorBody",
    "NOT_JSON",
    "body_snippet",
    "class_for_status",
    "decode_json",
    "make_error",
    "protocol_error",
    "should_retry_header",
]

BODY_SNIPPET_CHARS = 200
NOT_JSON: Any = object()  # what `decode_json` gives for an empty or malformed body


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """The provider's own account of an error, in a format-neutral shape."""

    message: str
    type: str | None = None  # OpenAI error.type, Anthropic error.type, Gemini error.status
    code: str | None = None  # OpenAI error.code, Gemini ErrorInfo.reason, OpenRouter code
    details: tuple[str, ...] = ()  # identifiers that refine the class (Gemini quota ids)

    def describe(self) -> str:
        tags = ", ".join(t for t in (self.type, self.code) if t)
        return f"{self.message} [{tags}]" if tags else self.message


def decode_json(body: bytes) -> Any:
    """The JSON value of `body`, or `NOT_JSON` when it is empty or not JSON."""
    if not body.strip():
        return NOT_JSON
    try:
        return orjson.loads(body)  # every answer passes here: about 6x quicker than json
    except orjson.JSONDecodeError:
        pass  # what only the standard library reads: NaN, a byte-order mark, UTF-16, big ints
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return NOT_JSON


def body_snippet(body: bytes, secret: Secret | None = None) -> str:
    """At most `BODY_SNIPPET_CHARS` characters of `body`, keys scrubbed, for a message."""
    if not body.strip():
        return "(empty body)"
    text = body.decode("utf-8", errors="replace")
    text = " ".join(redact(text, secret).split())
    if len(text) > BODY_SNIPPET_CHARS:
        text = text[: BODY_SNIPPET_CHARS - 3] + "..."
    return text


def should_retry_header(response: HttpResponse) -> bool | None:
    """The provider's `x-should-retry: true|false` verdict (OpenAI, Anthropic), else None."""
    value = (response.header("x-should-retry") or "").strip().lower()
    return {"true": True, "false": False}.get(value)


def class_for_status(status: int) -> type[ProviderError]:
    """The error class a status means when the body says nothing more specific."""
    if status in (401, 403):
        return AuthError
    if status == 402:
        return QuotaExhaustedError
    if status == 408:
        return ProviderTimeoutError
    if status == 409:
        # A conflict on the provider's side (OpenAI's SDK retries 409 lock timeouts).
        return ServerError
    if status == 429:
        return RateLimitedError
    if status == 529:
        return OverloadedError
    if status >= 500:
        return ServerError
    return BadRequestError


def make_error(
    cls: type[ProviderError],
    message: str,
    response: HttpResponse,
    *,
    provider: str,
    secret: Secret | None,
    retry_after_s: float | None = None,
    status: int | None = None,
) -> ProviderError:
    """An error of `cls` for `response`, its message scrubbed and `x-should-retry` applied."""
    text = redact(" ".join(message.split()), secret)
    if len(text) > 2 * BODY_SNIPPET_CHARS:
        text = text[: 2 * BODY_SNIPPET_CHARS - 3] + "..."
    return cls(
        text,
        provider=provider,
        status=response.status if status is None else status,
        retry_after_s=retry_after_s,
        should_retry=should_retry_header(response),
    )


def protocol_error(
    why: str, response: HttpResponse, *, provider: str, secret: Secret | None
) -> ProtocolError:
    """A `ProtocolError` for a body that is not what the wire format promises."""
    error = make_error(
        ProtocolError,
        f"{why}: {body_snippet(response.body, secret)}",
        response,
        provider=provider,
        secret=None,  # the snippet is already scrubbed
    )
    assert isinstance(error, ProtocolError)
    return error
