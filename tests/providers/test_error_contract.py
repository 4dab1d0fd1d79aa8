"""One contract for every wire format: each failure the simulator can force, over real HTTP,
is one exact `ProviderError` subclass with the provider's status, the provider's name, and
never the key in its message. A row per (kind, failure): what differs between vendors is only
which class and status their API uses for the same event."""

from __future__ import annotations

import pytest

from evalcluster.errors import (
    AuthError,
    BadRequestError,
    ContentFilteredError,
    ContextLengthError,
    OverloadedError,
    ProtocolError,
    ProviderConnectionError,
    ProviderTimeoutError,
    QuotaExhaustedError,
    RateLimitedError,
    ServerError,
)

from .conftest import ask, over_http

pytestmark = pytest.mark.anyio

# The failures every wire format shares, and what each becomes.
SHARED = [
    ("429", RateLimitedError, 429), ("quota", QuotaExhaustedError, 429),
    ("500", ServerError, 500), ("overloaded", OverloadedError, 503),
    ("auth", AuthError, 401), ("forbidden", AuthError, 403),
    ("bad_request", BadRequestError, 400), ("context_length", ContextLengthError, 400),
    ("error_in_200", ServerError, 502), ("invalid_json", ProtocolError, 200),
    ("html_502", ProtocolError, 502), ("empty", ProtocolError, 200),
    ("timeout", ProviderTimeoutError, None), ("drop", ProviderConnectionError, None),
    ("503", ServerError, 503),
]  # fmt: skip
# Where a vendor's API says the same thing differently (or says more).
VENDOR = {
    "openai": [("content_filter", ContentFilteredError, 400)],
    "anthropic": [("credits", QuotaExhaustedError, 400), ("overloaded", OverloadedError, 529)],
    "gemini": [
        ("credits", QuotaExhaustedError, 429), ("503", OverloadedError, 503),
        ("auth", AuthError, 400),
    ],
}  # fmt: skip
# OpenAI-compatible kinds speak OpenAI's errors.
KINDS = {"openai": "openai", "local": "openai", "openrouter": "openai",
         "anthropic": "anthropic", "gemini": "gemini"}  # fmt: skip


def _contract() -> list[tuple[str, str, type, int | None]]:
    rows = []
    for kind, fmt in KINDS.items():
        table = {force: (cls, status) for force, cls, status in SHARED}
        table.update({force: (cls, status) for force, cls, status in VENDOR[fmt]})
        rows += [(kind, force, cls, status) for force, (cls, status) in table.items()]
    return rows


@pytest.mark.parametrize(("kind", "force", "cls", "status"), _contract())
async def test_every_forced_failure_is_its_class_status_and_provider(
    sim, kind: str, force: str, cls: type, status: int | None, api_key: str
) -> None:
    async with over_http(sim, kind, force=force) as adapter:
        with pytest.raises(cls) as info:
            await adapter.complete(ask())
    assert type(info.value) is cls
    assert info.value.status == status and info.value.provider == "sim"
    assert info.value.kind and api_key not in str(info.value)
