"""Local OpenAI-compatible servers: optional key, required base_url, guarded URL."""

from __future__ import annotations

import pydantic
import pytest

from evalcluster.errors import SpecError
from evalcluster.providers import build_adapter
from evalcluster.suite.models import ProviderConfig

from .conftest import ask, mocked, over_http, reply, sent, sim_answer

pytestmark = pytest.mark.anyio

_OK = {"model": "llama3", "choices": [{"index": 0, "message": {"role": "assistant",
       "content": "5"}, "finish_reason": "stop"}]}  # fmt: skip


async def test_no_key_means_no_authorization_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVALCLUSTER_TEST_KEY", raising=False)
    adapter, transport = mocked("local", reply(200, _OK), base_url="http://localhost:11434/v1",
                                api_key_env=None)  # fmt: skip
    completion = await adapter.complete(ask(max_tokens=4))
    call = sent(transport)
    assert call.url == "http://localhost:11434/v1/chat/completions"
    assert "Authorization" not in call.headers
    assert call.json()["max_tokens"] == 4  # the name compatible servers know
    assert completion.text == "5" and completion.usage.estimated  # Ollama-style: no usage


async def test_configured_key_is_sent_as_bearer(api_key: str) -> None:
    adapter, transport = mocked("local", reply(200, _OK), base_url="http://127.0.0.1:8000/v1")
    await adapter.complete(ask())
    assert sent(transport).headers["Authorization"] == f"Bearer {api_key}"


def test_base_url_is_required() -> None:
    with pytest.raises(pydantic.ValidationError, match="base_url"):
        ProviderConfig(kind="local")


def test_metadata_address_is_refused_unless_allowed() -> None:
    with pytest.raises(SpecError, match="providers.x.base_url"):
        build_adapter("x", ProviderConfig(kind="local", base_url="http://[fd00:ec2::254]/v1"))


async def test_http_local_server_without_a_key(sim, monkeypatch: pytest.MonkeyPatch) -> None:
    # A local server configured without a key sends none: a keyless server (the simulator
    # without a key list) answers; one that wants a key answers 401, mapped like any other.
    from evalcluster.errors import AuthError

    monkeypatch.delenv("EVALCLUSTER_TEST_KEY", raising=False)
    request = ask("What is 2 + 3? Answer with the number only.")
    async with over_http(sim, "local", api_key_env=None) as adapter:
        assert (await adapter.complete(request)).text == sim_answer(request)
        sim.reconfigure(api_keys=["sk-wanted"])
        try:
            with pytest.raises(AuthError):
                await adapter.complete(request)
        finally:
            sim.reconfigure(api_keys=None)


async def test_http_local_server_with_a_key(sim, api_key: str) -> None:
    from evalcluster.simulator import count_tokens

    request = ask("What is 2 + 3? Answer with the number only.", max_tokens=8)
    async with over_http(sim, "local") as adapter:
        completion = await adapter.complete(request)
    assert completion.text == sim_answer(request) == "5"
    assert completion.usage.output_tokens == count_tokens("5") and not completion.usage.estimated
