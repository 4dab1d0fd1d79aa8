"""The simulator answers tool calls in every wire format, as its OpenAI format does: with tools
offered and the user's turn last, the simulated model calls the first tool with the user's text
as `input`; after a tool result it answers in text. Driven over real HTTP through the project's
own adapters, so the round trip works whichever format backs a gateway route."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from evalcluster.providers.base import (
    Completion,
    CompletionRequest,
    FinishReason,
    Message,
    Tool,
)
from evalcluster.providers.factory import build_adapter
from evalcluster.simulator import SimulatorThread
from evalcluster.suite.models import ProviderConfig

TOOL = Tool("get_weather", "The weather.", {"type": "object", "properties": {"city": {}}})
FORMATS = ("openai", "anthropic", "gemini")


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(latency_ms=0, accuracy=1.0) as running:
        yield running


def _complete(sim: SimulatorThread, wire: str, request: CompletionRequest) -> Completion:
    base_url = sim.url + "/v1" if wire == "openai" else sim.url
    config = ProviderConfig.model_validate(
        {"kind": "simulated", "base_url": base_url, "simulator": {"format": wire}}
    )

    async def call() -> Completion:
        adapter = build_adapter(f"sim-{wire}", config)
        try:
            return await adapter.complete(request)
        finally:
            await adapter.aclose()

    return asyncio.run(call())


@pytest.mark.parametrize("wire", FORMATS)
def test_tool_round_trip_in_each_format(sim: SimulatorThread, wire: str) -> None:
    asked = (Message("system", "Be brief."), Message("user", "Weather in Paris?"))
    first = _complete(sim, wire, CompletionRequest("sim-1", asked, tools=(TOOL,)))
    assert first.finish_reason is FinishReason.TOOL_CALLS
    (call,) = first.tool_calls
    assert call.name == "get_weather" and call.id
    assert json.loads(call.arguments) == {"input": "Weather in Paris?"}
    answered = (
        *asked,
        Message("assistant", "", first.tool_calls),
        Message("tool", '{"celsius": 21}', tool_call_id=call.id, name=call.name),
    )
    second = _complete(sim, wire, CompletionRequest("sim-1", answered, tools=(TOOL,)))
    assert second.tool_calls == ()
    assert second.finish_reason is FinishReason.STOP and second.text


@pytest.mark.parametrize("wire", FORMATS)
def test_without_tools_the_model_answers_in_text(sim: SimulatorThread, wire: str) -> None:
    request = CompletionRequest("sim-1", (Message("user", "What is 2 + 2?"),))
    answer = _complete(sim, wire, request)
    assert answer.tool_calls == () and answer.text.strip() == "4"
