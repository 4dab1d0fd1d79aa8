"""Shared helpers: async tests run on asyncio through anyio's pytest plugin; unit tests answer
adapters through `MockTransport`, integration tests (`over_http`) go to the real simulator."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from evalcluster.providers import build_adapter
from evalcluster.providers.adapter import HttpAdapter
from evalcluster.providers.base import CompletionRequest, Message
from evalcluster.providers.transport import HttpRequest, HttpResponse, MockTransport
from evalcluster.suite.models import ProviderConfig

KEY = "sk-test-0123456789abcdef0123456789"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A key in EVALCLUSTER_TEST_KEY, as suites reference keys."""
    monkeypatch.setenv("EVALCLUSTER_TEST_KEY", KEY)
    yield KEY


def reply(status: int = 200, payload: Any = None, headers: dict[str, str] | None = None,
          raw: bytes | None = None) -> HttpResponse:  # fmt: skip
    """A response with a JSON `payload` (or `raw` bytes)."""
    body = raw if raw is not None else json.dumps(payload).encode()
    return HttpResponse(status, {k.lower(): v for k, v in (headers or {}).items()}, body)


def mocked(
    kind: str, answer: HttpResponse | Any, **config: Any
) -> tuple[HttpAdapter, MockTransport]:
    """An adapter of `kind` whose every request gets `answer` (a response or a handler)."""
    handler = answer if callable(answer) else (lambda request: answer)
    transport = MockTransport(handler)
    config.setdefault("api_key_env", "EVALCLUSTER_TEST_KEY")
    adapter = build_adapter("p", ProviderConfig(kind=kind, **config), transport=transport)
    assert isinstance(adapter, HttpAdapter)
    return adapter, transport


def ask(text: str = "What is 2 + 3?", *, system: str | None = None, model: str = "m",
        **params: Any) -> CompletionRequest:  # fmt: skip
    messages = ([Message("system", system)] if system else []) + [Message("user", text)]
    return CompletionRequest(model=model, messages=tuple(messages), params=params)


def sent(transport: MockTransport) -> HttpRequest:
    """The one request the transport saw."""
    assert len(transport.requests) == 1
    return transport.requests[0]


# --- over real HTTP, against the simulator ---------------------------------------------------

# What each kind's official SDK calls base_url, relative to the simulator's root.
SIM_BASE = {"openai": "/v1", "openrouter": "/v1", "local": "/v1", "anthropic": "", "gemini": ""}
FORCED_TIMEOUT_S = 0.5  # client timeout in forcing tests; the simulator hangs for longer


@pytest.fixture(scope="session")
def sim():
    """One simulator (in a thread, real HTTP on a free port) for every provider test."""
    from evalcluster.simulator import SimulatorConfig, SimulatorThread

    with SimulatorThread(SimulatorConfig(hang_s=2.0, seed=0, accuracy=1.0)) as server:
        yield server


@contextlib.asynccontextmanager
async def over_http(sim, kind: str, *, force: str | None = None,
                    headers: dict[str, str] | None = None,
                    **config: Any) -> AsyncIterator[HttpAdapter]:  # fmt: skip
    """An adapter of `kind` pointed at the simulator; `force` sets `x-sim-force`."""
    sent_headers = dict(headers or {})
    if force is not None:
        sent_headers["x-sim-force"] = force
        config.setdefault("timeout_s", FORCED_TIMEOUT_S)
    config.setdefault("api_key_env", "EVALCLUSTER_TEST_KEY")
    provider = ProviderConfig(
        kind=kind, base_url=sim.url + SIM_BASE[kind], headers=sent_headers, **config
    )
    adapter = build_adapter("sim", provider)
    assert isinstance(adapter, HttpAdapter)
    try:
        yield adapter
    finally:
        await adapter.aclose()


def sim_answer(request: CompletionRequest) -> str:
    """What the simulator (seed 0, accuracy 1) answers to `request`."""
    from evalcluster.simulator import answer

    prompt = [m.content for m in request.messages if m.role == "user"][-1]
    return answer(prompt, model=request.model, seed=0, accuracy=1.0)


def sim_input_tokens(request: CompletionRequest) -> int:
    from evalcluster.simulator import count_tokens

    return sum(count_tokens(m.content) for m in request.messages)
