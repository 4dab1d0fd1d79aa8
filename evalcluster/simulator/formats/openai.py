"""OpenAI Chat Completions (and OpenRouter's additions to it).

Shapes follow https://platform.openai.com/docs/api-reference/chat/create and
https://platform.openai.com/docs/guides/error-codes; rate-limit headers follow
https://platform.openai.com/docs/guides/rate-limits (``x-ratelimit-*``, Go-style durations).
OpenRouter (https://openrouter.ai/docs/api-reference/errors) adds ``usage.cost`` when the body
asks ``"usage": {"include": true}`` and answers 402 when credits run out.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from evalcluster.simulator.formats.base import (
    ErrorContext,
    ErrorKind,
    HttpReply,
    RequestInvalid,
    SimRequest,
    SimResult,
    WireFormat,
    new_id,
    positive_int,
    window_headers,
)
from evalcluster.simulator.ratelimit import WindowState
from evalcluster.simulator.tokens import count_tokens

_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
_FINISH = {
    "stop": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "blocked": "content_filter",
}


def go_duration(seconds: float) -> str:
    """A duration as OpenAI writes it in ``x-ratelimit-reset-*``: "120ms", "1s", "6m0s"."""
    ms = max(0, round(seconds * 1000))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    out = f"{hours}h" if hours else ""
    if hours or minutes:
        out += f"{minutes}m"
    return f"{out}{secs}s"


class OpenAIFormat(WireFormat):
    name = "openai"

    def api_key(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        scheme, _, key = auth.partition(" ")
        key = key.strip()
        return key if scheme.lower() == "bearer" and key else None

    def parse(self, body: Any, request: web.Request) -> SimRequest:
        if not isinstance(body, dict):
            raise RequestInvalid("The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise RequestInvalid("you must provide a model parameter", "model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestInvalid("Missing required parameter: 'messages'.", "messages")
        input_tokens = 0
        prompt = ""
        last_role = None
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in _ROLES:
                raise RequestInvalid(
                    f"Invalid value for 'messages[{i}].role'.", f"messages[{i}].role"
                )
            text = _content_text(message.get("content"), f"messages[{i}].content")
            input_tokens += count_tokens(text)
            if message["role"] == "user":
                prompt = text
            last_role = message["role"]
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is not None and not positive_int(max_tokens):
            raise RequestInvalid("Invalid 'max_tokens': expected an integer >= 1.", "max_tokens")
        usage = body.get("usage")
        return SimRequest(
            model=model,
            prompt=prompt,
            input_tokens=input_tokens,
            max_tokens=max_tokens,
            stop=_stop(body.get("stop")),
            include_cost=isinstance(usage, dict) and usage.get("include") is True,
            call_tool=_first_tool(body.get("tools")) if last_role == "user" else None,
        )

    def success(self, request: SimRequest, result: SimResult) -> dict[str, Any]:
        refused = result.finish in ("content_filter", "blocked")
        usage: dict[str, Any] = {
            "prompt_tokens": result.input_tokens,
            "completion_tokens": result.output_tokens,
            "total_tokens": result.input_tokens + result.output_tokens,
        }
        if result.cost_usd is not None:
            usage["cost"] = result.cost_usd
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if refused else result.text,
            "refusal": None,
        }
        finish = _FINISH[result.finish]
        if request.call_tool is not None and not refused:
            arguments = json.dumps({"input": request.prompt})
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": new_id("call_"),
                    "type": "function",
                    "function": {"name": request.call_tool, "arguments": arguments},
                }
            ]
            finish = "tool_calls"
        return {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.model,
            "system_fingerprint": "fp_evalcluster_sim",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": usage,
        }

    def content_filter(self, request: SimRequest, result: SimResult) -> HttpReply:
        return self.error("content_filter", ErrorContext(model=request.model))

    def error(self, kind: ErrorKind, ctx: ErrorContext) -> HttpReply:
        if kind == "credits":
            # OpenRouter's own shape, not OpenAI's: the code is the HTTP status, a number.
            message = "Insufficient credits. Add more using https://openrouter.ai/settings/credits"
            return HttpReply.json(402, {"error": {"code": 402, "message": message}})
        status, type_, code, message, param = _error_fields(kind, ctx)
        body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
        return HttpReply.json(status, body)

    def limit_headers(
        self, requests: WindowState | None, tokens: WindowState | None
    ) -> dict[str, str]:
        return window_headers(requests, tokens, "x-ratelimit-{field}-{window}", go_duration)


def _error_fields(kind: ErrorKind, ctx: ErrorContext) -> tuple[int, str, str | None, str, Any]:
    """(status, type, code, message, param) of an OpenAI error body."""
    if kind == "rate_limit":
        unit = ctx.limited_by or "requests"
        what = "tokens per min (TPM)" if unit == "tokens" else "requests per min (RPM)"
        if ctx.requested is not None:
            message = (
                f"Request too large for {ctx.model} on {what}: Limit {ctx.limit}, "
                f"Requested {ctx.requested}. The input or output tokens must be reduced."
            )
        else:
            wait = go_duration(ctx.retry_after_s or 0.0)
            message = (
                f"Rate limit reached for {ctx.model} on {what}: Limit {ctx.limit or 'n/a'}. "
                f"Please try again in {wait}."
            )
        return 429, unit, "rate_limit_exceeded", message, None
    if kind == "context_length":
        message = (
            f"This model's maximum context length is {ctx.context_window} tokens. However, "
            f"your messages resulted in {ctx.input_tokens} tokens. "
            "Please reduce the length of the messages."
        )
        return 400, "invalid_request_error", "context_length_exceeded", message, "messages"
    if kind == "bad_request":
        message = ctx.message or "Invalid request."
        return 400, "invalid_request_error", None, message, ctx.param
    if kind == "forbidden":
        message = f"Project does not have access to model `{ctx.model}`"
        return 403, "invalid_request_error", "model_not_found", message, None
    if kind == "not_found":
        return 404, "invalid_request_error", None, ctx.message or "Not found.", None
    return _STOCK[kind]


_STOCK: dict[str, tuple[int, str, str | None, str, Any]] = {
    "quota": (
        429,
        "insufficient_quota",
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details.",
        None,
    ),
    "server_error": (
        500,
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
        None,
    ),
    "unavailable": (503, "server_error", None, "Service Unavailable.", None),
    "overloaded": (
        503,
        "server_error",
        None,
        "The engine is currently overloaded, please try again later.",
        None,
    ),
    "auth_missing": (
        401,
        "invalid_request_error",
        None,
        "You didn't provide an API key. You need to provide your API key in an Authorization "
        "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        None,
    ),
    "auth_invalid": (
        401,
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        None,
    ),
    "content_filter": (
        400,
        "invalid_request_error",
        "content_policy_violation",
        "Your request was rejected as a result of our safety system. Your prompt may contain "
        "text that is not allowed by our safety system.",
        None,
    ),
}


def _content_text(content: Any, where: str) -> str:
    """The text of a message's content: a string, a list of parts, or null."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                if not isinstance(part.get("text"), str):
                    raise RequestInvalid(f"Invalid value for '{where}': text part without text.")
                texts.append(part["text"])
        return "\n".join(texts)
    raise RequestInvalid(f"Invalid type for '{where}': expected a string or an array.", where)


def _first_tool(tools: Any) -> str | None:
    """The name of the first function in a request's `tools`, if it offers any."""
    if not isinstance(tools, list) or not tools:
        return None
    first = tools[0]
    function = first.get("function") if isinstance(first, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise RequestInvalid("Invalid value for 'tools[0].function.name'.", "tools[0]")
    return function["name"]


def _stop(stop: Any) -> tuple[str, ...]:
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,)
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= 4:
        return tuple(s for s in stop if s)
    raise RequestInvalid("Invalid 'stop': expected a string or up to 4 strings.", "stop")
