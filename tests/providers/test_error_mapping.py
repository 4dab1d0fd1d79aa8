"""What every adapter shares: unreadable bodies, x-should-retry, transport failures."""

from __future__ import annotations

import pickle

import pytest

from evalcluster.errors import (
    AuthError,
    BadRequestError,
    ProtocolError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExhaustedError,
    RateLimitedError,
    ServerError,
)
from evalcluster.providers.error_mapping import BODY_SNIPPET_CHARS, class_for_status
from evalcluster.providers.transport import HttpRequest, HttpResponse
from tests.provider_faults import FINAL, TRANSIENT, case_id

from .conftest import ask, mocked, over_http, reply

pytestmark = pytest.mark.anyio

HTML = b"<html><head><title>502 Bad Gateway</title></head><body>" + b"x" * 1000 + b"</body></html>"


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini", "openrouter"])
async def test_html_502_is_a_retryable_protocol_error_with_a_short_body(
    kind: str, api_key: str
) -> None:
    adapter, _ = mocked(kind, reply(502, raw=HTML, headers={"content-type": "text/html"}))
    with pytest.raises(ProtocolError) as info:
        await adapter.complete(ask())
    error = info.value
    assert error.status == 502 and error.retryable and error.kind == "protocol"
    assert "502 Bad Gateway" in error.message
    snippet = error.message.split(": ", 1)[1]
    assert len(snippet) <= BODY_SNIPPET_CHARS


@pytest.mark.parametrize(
    ("raw", "what"), [(b"", "empty body"), (b'{"choices": [{"mess', "invalid JSON")]
)
@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini"])
async def test_unreadable_200_is_a_protocol_error_not_retried(
    kind: str, raw: bytes, what: str, api_key: str
) -> None:
    adapter, _ = mocked(kind, reply(200, raw=raw))
    with pytest.raises(ProtocolError, match=what) as info:
        await adapter.complete(ask())
    assert info.value.status == 200 and not info.value.retryable


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini"])
async def test_wrong_shape_200_is_a_protocol_error(kind: str, api_key: str) -> None:
    adapter, _ = mocked(kind, reply(200, {"unexpected": True}))
    with pytest.raises(ProtocolError):
        await adapter.complete(ask())


async def test_x_should_retry_overrides_retryability(api_key: str) -> None:
    body = {"error": {"message": "boom", "type": "server_error"}}
    adapter, _ = mocked("openai", reply(500, body, {"x-should-retry": "false"}))
    with pytest.raises(ServerError) as info:
        await adapter.complete(ask())
    assert info.value.should_retry is False and info.value.retryable is False
    body = {"error": {"message": "bad", "type": "invalid_request_error"}}
    adapter, _ = mocked("openai", reply(400, body, {"x-should-retry": "true"}))
    with pytest.raises(BadRequestError) as info:
        await adapter.complete(ask())
    assert info.value.should_retry is True and info.value.retryable is True
    adapter, _ = mocked("openai", reply(200, raw=b"", headers={"x-should-retry": "true"}))
    with pytest.raises(ProtocolError) as info:
        await adapter.complete(ask())
    assert info.value.retryable is True
    adapter, _ = mocked("openai", reply(500, {"error": {"message": "boom"}}))
    with pytest.raises(ServerError) as info:  # no header: the class default holds
        await adapter.complete(ask())
    assert info.value.should_retry is None and info.value.retryable is True


async def test_should_retry_survives_pickling(api_key: str) -> None:
    adapter, _ = mocked(
        "openai", reply(503, {"error": {"message": "x"}}, {"x-should-retry": "false"})
    )
    with pytest.raises(ServerError) as info:
        await adapter.complete(ask())
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is ServerError and copy.should_retry is False and not copy.retryable
    assert (copy.provider, copy.status, copy.message) == ("p", 503, info.value.message)


async def test_bare_429_and_401_keep_their_meaning_without_a_json_body(api_key: str) -> None:
    adapter, _ = mocked(
        "anthropic", reply(429, raw=b"Too Many Requests", headers={"retry-after": "4"})
    )
    with pytest.raises(RateLimitedError) as info:
        await adapter.complete(ask())
    assert info.value.retry_after_s == 4.0
    adapter, _ = mocked("gemini", reply(401, raw=b"Unauthorized"))
    with pytest.raises(AuthError):
        await adapter.complete(ask())


@pytest.mark.parametrize("exc", [ProviderTimeoutError, ProviderConnectionError])
async def test_transport_failures_carry_the_provider_name(exc: type, api_key: str) -> None:
    def fail(request: HttpRequest) -> HttpResponse:
        raise exc("network trouble")

    adapter, _ = mocked("openai", fail)
    with pytest.raises(exc) as info:
        await adapter.complete(ask())
    assert info.value.provider == "p" and info.value.retryable


def test_status_defaults() -> None:
    assert class_for_status(401) is AuthError and class_for_status(403) is AuthError
    assert class_for_status(402) is QuotaExhaustedError
    assert class_for_status(408) is ProviderTimeoutError
    assert class_for_status(429) is RateLimitedError
    assert class_for_status(504) is ServerError
    assert class_for_status(418) is BadRequestError


# --- over real HTTP, against the simulator ---------------------------------------------------

WRONG_KEY = "sk-wrong-0123456789abcdefghijklmnop"


@pytest.fixture(scope="module")
def keyed_sim():
    """A simulator that accepts one key only."""
    from evalcluster.simulator import SimulatorConfig, SimulatorThread

    with SimulatorThread(SimulatorConfig(api_keys=["sk-right-key-abcdefghijklmnop"])) as server:
        yield server


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini", "openrouter", "local"])
async def test_http_wrong_key_is_an_auth_error_that_never_shows_the_key(
    keyed_sim, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALCLUSTER_TEST_KEY", WRONG_KEY)
    async with over_http(keyed_sim, kind) as adapter:
        with pytest.raises(AuthError) as info:
            await adapter.complete(ask())
        assert WRONG_KEY not in repr(adapter)
    error = info.value
    assert not error.retryable
    for shown in (str(error), repr(error), error.message, repr(error.__reduce__())):
        assert WRONG_KEY not in shown and "0123456789abcdef" not in shown


async def test_http_right_key_is_accepted(keyed_sim, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALCLUSTER_TEST_KEY", "sk-right-key-abcdefghijklmnop")
    async with over_http(keyed_sim, "anthropic") as adapter:
        completion = await adapter.complete(ask("What is 1 + 1?"))
    assert completion.text == "2"


async def test_a_redirect_is_an_error_not_an_answer(api_key: str) -> None:
    adapter, _ = mocked("openai", reply(302, raw=b"", headers={"location": "http://elsewhere/"}))
    with pytest.raises(ProtocolError) as info:
        await adapter.complete(ask())
    assert info.value.status == 302 and not info.value.retryable


@pytest.mark.parametrize("error", TRANSIENT, ids=case_id)
def test_the_endpoints_failures_are_retryable(error: ProviderError) -> None:
    assert error.retryable is True


@pytest.mark.parametrize("error", FINAL, ids=case_id)
def test_the_requests_own_faults_are_not_retryable(error: ProviderError) -> None:
    assert error.retryable is False
