"""Anthropic Messages bodies to and from the gateway's requests and `providers.base` answers.

Reference: docs.anthropic.com/en/api/messages (the request, the `message` object) and
/en/api/messages-streaming (the server-sent events). A Messages request becomes the same
`ChatRequest` an OpenAI client would have sent, so `/v1/messages` shares the routes, tenants,
budgets, weights, cache and rows of `/v1/chat/completions`. Accepted: `system` (a string or
text blocks), user/assistant turns of text, `tool_use` and `tool_result` blocks, `tools`,
`tool_choice` (auto, any, tool, none), `max_tokens` (required), `stop_sequences`,
`temperature`, `top_p`. Image, document and thinking blocks are refused (400, naming the
field); other fields (`metadata`, `top_k`, ...) are ignored.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from evalcluster.gateway.errors import GatewayError
from evalcluster.gateway.wire import (
    ChatMessage,
    ChatRequest,
    FunctionCall,
    FunctionSpec,
    NamedChoice,
    ToolCallIn,
    ToolSpec,
    validate_body,
)
from evalcluster.providers.base import Completion, FinishReason


class _Open(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextBlock(_Open):
    type: Literal["text"]
    text: str


class Block(_Open):
    """One content block of a turn; which fields matter depends on `type`."""

    type: str
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None
    tool_use_id: str | None = None
    content: str | list[TextBlock] | None = None
    is_error: bool | None = None


class AnthropicMessage(_Open):
    role: Literal["user", "assistant"]
    content: str | list[Block]


class AnthropicTool(_Open):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    input_schema: dict[str, Any]


class AnthropicToolChoice(_Open):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None


class MessagesRequest(_Open):
    """The fields of a Messages request the gateway reads."""

    model: str = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    messages: list[AnthropicMessage] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, ge=0, le=1)
    stream: bool = False
    tools: list[AnthropicTool] | None = None
    tool_choice: AnthropicToolChoice | None = None


def parse_messages_request(body: Any) -> ChatRequest:
    """The chat request `body` (a Messages request) stands for, or a 400 naming the field."""
    return _chat_request(validate_body(MessagesRequest, body, _param, "{param}: {msg}"))


def _param(loc: tuple[Any, ...]) -> str:
    parts = [
        str(p)
        for p in loc
        if not (
            isinstance(p, str)
            and (p in ("str", "list[Block]", "list[TextBlock]") or p.startswith("literal["))
        )
    ]
    return ".".join(parts) or "body"


def _chat_request(request: MessagesRequest) -> ChatRequest:
    messages: list[ChatMessage] = []
    if request.system:
        system = request.system
        text = system if isinstance(system, str) else "\n".join(b.text for b in system)
        messages.append(ChatMessage(role="system", content=text))
    for i, message in enumerate(request.messages):
        messages += _turn(message, i)
    tools = [
        ToolSpec(
            type="function",
            function=FunctionSpec(
                name=t.name, description=t.description, parameters=t.input_schema
            ),
        )
        for t in request.tools or ()
    ]
    return ChatRequest(
        model=request.model,
        messages=messages,
        temperature=request.temperature,
        top_p=request.top_p,
        max_tokens=request.max_tokens,
        stop=[s for s in request.stop_sequences or () if s] or None,
        stream=request.stream,
        tools=tools or None,
        tool_choice=_tool_choice(request.tool_choice) if tools else None,
    )


def _turn(message: AnthropicMessage, index: int) -> list[ChatMessage]:
    """One Anthropic turn as chat messages: a user turn's `tool_result` blocks become tool
    messages (before its text), an assistant turn's `tool_use` blocks its tool calls."""
    if isinstance(message.content, str):
        return [ChatMessage(role=message.role, content=message.content)]
    texts: list[str] = []
    calls: list[ToolCallIn] = []
    results: list[ChatMessage] = []
    for j, block in enumerate(message.content):
        where = f"messages.{index}.content.{j}"
        if block.type == "text" and block.text is not None:
            texts.append(block.text)
        elif block.type == "tool_use" and message.role == "assistant":
            if not block.id or not block.name:
                raise GatewayError(400, f"{where}: a tool_use block needs id and name", param=where)
            arguments = json.dumps(block.input or {}, ensure_ascii=False)
            calls.append(
                ToolCallIn(id=block.id, function=FunctionCall(name=block.name, arguments=arguments))
            )
        elif block.type == "tool_result" and message.role == "user":
            if not block.tool_use_id:
                raise GatewayError(
                    400, f"{where}: a tool_result block needs tool_use_id", param=where
                )
            content = block.content
            text = content if isinstance(content, str) else "\n".join(b.text for b in content or ())
            results.append(ChatMessage(role="tool", content=text, tool_call_id=block.tool_use_id))
        else:
            raise GatewayError(
                400,
                f"{where}: {block.type!r} blocks are not supported in a {message.role} turn "
                "by this gateway",
                param=where,
            )
    out = list(results)
    if message.role == "assistant":
        out.append(
            ChatMessage(role="assistant", content="\n".join(texts), tool_calls=calls or None)
        )
    elif texts or not results:
        out.append(ChatMessage(role="user", content="\n".join(texts)))
    return out


def _tool_choice(choice: AnthropicToolChoice | None) -> Any:
    if choice is None or choice.type == "auto":
        return "auto" if choice else None
    if choice.type == "any":
        return "required"
    if choice.type == "none":
        return "none"
    if not choice.name:
        raise GatewayError(
            400, "tool_choice.name: required when type is 'tool'", param="tool_choice"
        )
    return NamedChoice(function=FunctionCall(name=choice.name))


# --- answers -----------------------------------------------------------------------------


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def stop_reason(completion: Completion) -> str:
    if completion.tool_calls:
        return "tool_use"
    reason = completion.finish_reason
    if reason is FinishReason.LENGTH:
        return "max_tokens"
    if reason in (FinishReason.REFUSAL, FinishReason.CONTENT_FILTER, FinishReason.BLOCKED):
        return "refusal"
    if completion.raw_finish_reason == "stop_sequence":
        return "stop_sequence"
    return "end_turn"


def usage_body(completion: Completion) -> dict[str, int]:
    """Anthropic counts cache tokens apart from `input_tokens`; `Usage` includes them."""
    usage = completion.usage
    cached = usage.cache_read_tokens + usage.cache_write_tokens
    return {
        "input_tokens": max(0, usage.input_tokens - cached),
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
    }


def _input(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def content_blocks(completion: Completion) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if completion.text:
        blocks.append({"type": "text", "text": completion.text})
    for call in completion.tool_calls:
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": _input(call.arguments)}
        )
    return blocks


def message_body(completion: Completion, route: str, message_id: str) -> dict[str, Any]:
    """A `message` object; `model` is the route the client named."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "content": content_blocks(completion),
        "model": route,
        "stop_reason": stop_reason(completion),
        "stop_sequence": None,
        "usage": usage_body(completion),
    }


def message_events(
    completion: Completion, route: str, message_id: str
) -> list[tuple[str, dict[str, Any]]]:
    """The (event, data) pairs of a streamed answer: message_start, then per content block
    content_block_start / content_block_delta / content_block_stop, message_delta (stop
    reason and output tokens), message_stop."""
    usage = usage_body(completion)
    start = message_body(completion, route, message_id)
    start.update(content=[], stop_reason=None, usage={**usage, "output_tokens": 0})
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start})
    ]
    for index, block in enumerate(content_blocks(completion)):
        if block["type"] == "text":
            opening: dict[str, Any] = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": block["text"]}
        else:
            opening = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        events += [
            ("content_block_start", {"type": "content_block_start", "index": index,
                                     "content_block": opening}),
            ("content_block_delta", {"type": "content_block_delta", "index": index,
                                     "delta": delta}),
            ("content_block_stop", {"type": "content_block_stop", "index": index}),
        ]  # fmt: skip
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason(completion), "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"]},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events
