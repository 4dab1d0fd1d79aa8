"""Anthropic Messages API.

Reference: docs.anthropic.com/en/api/messages and /en/api/errors. `POST {base_url}/v1/messages`
(base_url defaults to https://api.anthropic.com, as in the official SDK) with `x-api-key` and
`anthropic-version` headers. The system prompt is the top-level `system` field, `max_tokens` is
required, and the answer is the concatenation of the `text` content blocks (thinking and tool
blocks are not part of it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from evalcluster.errors import (
    AuthError,
    BadRequestError,
    ContextLengthError,
    OverloadedError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExhaustedError,
    RateLimitedError,
    ServerError,
)
from evalcluster.providers.adapter import HttpAdapter, HttpCall, estimated_usage
from evalcluster.providers.base import (
    Completion,
    CompletionRequest,
    FinishReason,
    Message,
    Tool,
    ToolCall,
    Usage,
    tool_arguments,
)
from evalcluster.providers.error_mapping import ErrorBody, class_for_status
from evalcluster.providers.pricing import estimate_tokens
from evalcluster.providers.transport import HttpResponse

__all__ = ["DEFAULT_MAX_TOKENS", "AnthropicAdapter"]

DEFAULT_MAX_TOKENS = 1024  # sent when the target gives none: the API requires the field
# The shortest prompt Anthropic caches (Sonnet and Opus; Haiku wants 2,048): a shorter mark is
# ignored, so the estimate only needs to be about right.
PROMPT_CACHE_MIN_TOKENS = 1024

STOP_REASONS = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
    "refusal": FinishReason.REFUSAL,
    "tool_use": FinishReason.TOOL_CALLS,
}

# Error types from docs.anthropic.com/en/api/errors#http-errors.
ERROR_TYPES: dict[str, type[ProviderError]] = {
    "invalid_request_error": BadRequestError,
    "authentication_error": AuthError,
    "permission_error": AuthError,
    "billing_error": QuotaExhaustedError,
    "not_found_error": BadRequestError,
    "request_too_large": BadRequestError,
    "rate_limit_error": RateLimitedError,
    "api_error": ServerError,
    "timeout_error": ProviderTimeoutError,
    "overloaded_error": OverloadedError,
}


class AnthropicAdapter(HttpAdapter):
    """api.anthropic.com's Messages API."""

    kind = "anthropic"
    default_base_url = "https://api.anthropic.com"
    default_key_env = "ANTHROPIC_API_KEY"

    def build_call(self, request: CompletionRequest) -> HttpCall:
        headers = dict(self.config.headers)
        headers["x-api-key"] = self.api_key or ""
        headers["anthropic-version"] = self.config.anthropic_version
        return HttpCall(f"{self.base_url}/v1/messages", headers, self.body(request))

    def body(self, request: CompletionRequest) -> dict[str, Any]:
        params = dict(request.params)
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": params.pop("max_tokens", None) or DEFAULT_MAX_TOKENS,
            "messages": _wire_messages(request.chat),
        }
        if request.system is not None:
            body["system"] = self._system(request.system)
        if request.tools:
            body["tools"] = [_wire_tool(t) for t in request.tools]
        choice = _wire_tool_choice(request.tool_choice)
        if choice is not None:
            body["tool_choice"] = choice
        stop = params.pop("stop", None)
        if stop:
            body["stop_sequences"] = list(stop)
        params.pop("seed", None)  # the Messages API has no seed; sending one is a 400
        body.update({k: v for k, v in params.items() if v is not None})
        return body

    def _system(self, system: str) -> str | list[dict[str, Any]]:
        """The system prompt, marked for the prompt cache when it is long enough to qualify:
        later requests with the same prefix read it at a tenth of the input rate."""
        if self.config.prompt_cache == "off" or estimate_tokens(system) < PROMPT_CACHE_MIN_TOKENS:
            return system
        return [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]

    def parse_completion(
        self, request: CompletionRequest, payload: Any, response: HttpResponse, latency_ms: float
    ) -> Completion:
        blocks = payload["content"]
        text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        raw = payload.get("stop_reason")
        usage = _usage(payload.get("usage")) or estimated_usage(request, text)
        return Completion(
            text=text,
            finish_reason=STOP_REASONS.get(raw, FinishReason.OTHER),
            usage=usage,
            latency_ms=latency_ms,
            model=payload.get("model"),
            raw_finish_reason=raw,
            rate_limits=self.rate_limits(response),
            tool_calls=tuple(
                ToolCall(str(b.get("id") or ""), str(b["name"]), json.dumps(b.get("input") or {}))
                for b in blocks
                if b.get("type") == "tool_use" and b.get("name")
            ),
        )

    def read_error(self, payload: Any) -> ErrorBody | None:
        error = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(error, dict):
            return None
        kind = error.get("type")
        message = str(error.get("message") or "")
        return ErrorBody(message, type=kind if isinstance(kind, str) else None)

    def error_class(self, status: int, error: ErrorBody) -> type[ProviderError]:
        message = error.message.lower()
        cls = ERROR_TYPES.get(error.type or "") or class_for_status(status)
        # A workspace's spend limit and an empty credit balance are not transient, whatever
        # status carries them (429 rate_limit_error / 400 invalid_request_error).
        if "usage limit" in message or "spend limit" in message or "credit balance" in message:
            return QuotaExhaustedError
        if cls is BadRequestError and "prompt is too long" in message:
            return ContextLengthError
        return cls


def _wire_messages(chat: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Chat turns as Messages API turns: an assistant's tool calls become `tool_use` blocks,
    and tool results `tool_result` blocks of one user turn (consecutive results merged: the
    API wants the results of one assistant turn together, right after it)."""
    out: list[dict[str, Any]] = []
    for m in chat:
        if m.role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": m.tool_call_id or "",
                "content": m.content,
            }
            last = out[-1] if out else None
            if last and last["role"] == "user" and isinstance(last["content"], list):
                last["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif m.tool_calls:
            blocks: list[dict[str, Any]] = (
                [{"type": "text", "text": m.content}] if m.content else []
            )
            blocks += [
                {
                    "type": "tool_use",
                    "id": c.id,
                    "name": c.name,
                    "input": tool_arguments(c.arguments),
                }
                for c in m.tool_calls
            ]
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def _wire_tool(tool: Tool) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "name": tool.name,
        "input_schema": dict(tool.parameters or {"type": "object", "properties": {}}),
    }
    if tool.description is not None:
        wire["description"] = tool.description
    return wire


def _wire_tool_choice(choice: str | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """OpenAI's choices in Anthropic's words ("required" is "any")."""
    if choice is None:
        return None
    if isinstance(choice, str):
        return {"type": {"required": "any"}.get(choice, choice)}
    return {"type": "tool", "name": choice["name"]}


def _usage(usage: Any) -> Usage | None:
    """Anthropic's input_tokens exclude cache tokens; ours include them (they count against
    limits and cost), with the cache counts kept apart."""
    if not isinstance(usage, dict) or usage.get("input_tokens") is None:
        return None
    cache_write = int(usage.get("cache_creation_input_tokens") or 0)
    cache_read = int(usage.get("cache_read_input_tokens") or 0)
    return Usage(
        input_tokens=int(usage["input_tokens"]) + cache_write + cache_read,
        output_tokens=int(usage.get("output_tokens") or 0),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )
