"""OpenAI chat bodies to and from the provider-neutral types."""

from __future__ import annotations

import json

import pytest

from evalcluster.gateway.errors import GatewayError
from evalcluster.gateway.wire import (
    completion_body,
    completion_chunks,
    parse_chat_request,
    to_completion_request,
)
from evalcluster.providers.base import Completion, FinishReason, ToolCall, Usage

TOOL = {
    "type": "function",
    "function": {"name": "lookup", "description": "d", "parameters": {"type": "object"}},
}

CALL = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": 1}'}}


def test_a_multi_turn_tool_conversation_becomes_neutral_messages() -> None:
    chat = parse_chat_request(
        {
            "model": "sim/sim-1",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "a"},
                                             {"type": "text", "text": "b"}]},
                {"role": "assistant", "content": None, "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "c1", "content": "42"},
            ],
            "tools": [TOOL],
            "tool_choice": {"type": "function", "function": {"name": "lookup"}},
            "max_completion_tokens": 9,
            "temperature": 0,
            "stop": "END",
            "logprobs": True,  # ignored: not every provider can honour it
        }
    )  # fmt: skip
    request = to_completion_request(chat, "sim-1")
    assert request.model == "sim-1"
    assert [m.role for m in request.messages] == ["system", "user", "assistant", "tool"]
    assert request.messages[1].content == "a\nb"
    assert request.messages[2].tool_calls == (ToolCall("c1", "lookup", '{"q": 1}'),)
    assert request.messages[3].tool_call_id == "c1"
    assert request.tools[0].name == "lookup" and request.tools[0].parameters == {"type": "object"}
    assert request.tool_choice == {"name": "lookup"}
    assert request.params == {"temperature": 0, "max_tokens": 9, "stop": ["END"]}
    assert chat.deterministic


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "top_p": 3}, "top_p"),
        ({"model": "m", "messages": [{"role": "tool", "content": "x"}]},
         "messages[0].tool_call_id"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "x"}]},
         "tools[0].type"),
    ],
)  # fmt: skip
def test_a_bad_body_names_its_field(body: dict, param: str) -> None:
    with pytest.raises(GatewayError) as err:
        to_completion_request(parse_chat_request(body), "m")
    assert err.value.status == 400
    assert err.value.param == param


def test_a_tool_call_answer_has_null_content_and_finish_tool_calls() -> None:
    completion = Completion(
        "", FinishReason.TOOL_CALLS, Usage(5, 3), 1.0, tool_calls=(ToolCall("c9", "f", "{}"),)
    )
    body = completion_body(completion, "sim/sim-1", "chatcmpl-1")
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "f", "arguments": "{}"}
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    assert body["model"] == "sim/sim-1"


def test_stream_chunks_end_with_finish_then_usage_when_asked() -> None:
    completion = Completion("hello", FinishReason.LENGTH, Usage(2, 1), 1.0)
    chunks = completion_chunks(completion, "r", "id", include_usage=True)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1]) == "hello"
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 3
    assert all("usage" in c for c in chunks)
    plain = completion_chunks(completion, "r", "id", include_usage=False)
    assert all("usage" not in c for c in plain)
    json.dumps(chunks)  # every chunk is plain JSON


@pytest.mark.parametrize("body", [[], "text", None, 3])
def test_a_body_that_is_not_an_object_is_400_with_no_field(body: object) -> None:
    with pytest.raises(GatewayError) as err:
        parse_chat_request(body)
    assert (err.value.status, err.value.param) == (400, None)
    assert err.value.message == "the request body must be a JSON object"


def test_the_openai_400_quotes_the_field_then_pydantics_reason() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "top_p": 3}
    with pytest.raises(GatewayError) as err:
        parse_chat_request(body)
    assert err.value.message.startswith("invalid 'top_p': ")
    assert "less than or equal to 1" in err.value.message
