"""Anthropic Messages.

Shapes follow https://docs.anthropic.com/en/api/messages, errors
https://docs.anthropic.com/en/api/errors (``{"type": "error", "error": {"type", "message"}}``)
and rate-limit headers https://docs.anthropic.com/en/api/rate-limits
(``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}``, reset in RFC 3339).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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
    stop_list,
    window_headers,
)
from evalcluster.simulator.ratelimit import WindowState
from evalcluster.simulator.tokens import count_tokens

_STOP_REASON = {
    "stop": "end_turn",
    "stop_sequence": "stop_sequence",
    "length": "max_tokens",
    "content_filter": "refusal",
    "blocked": "refusal",
}

# kind -> (HTTP status, Anthropic error type, stock message)
_ERRORS: dict[str, tuple[int, str, str]] = {
    "rate_limit": (429, "rate_limit_error", ""),  # message built from the context
    "quota": (
        429,
        "rate_limit_error",
        "You have reached your specified workspace API usage limits. "
        "You will regain access at the start of the next month.",
    ),
    "credits": (
        400,
        "invalid_request_error",
        "Your credit balance is too low to access the Anthropic API. "
        "Please go to Plans & Billing to upgrade or purchase credits.",
    ),
    "server_error": (500, "api_error", "Internal server error"),
    "unavailable": (503, "api_error", "Service unavailable"),
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "auth_missing": (401, "authentication_error", "x-api-key header is required"),
    "auth_invalid": (401, "authentication_error", "invalid x-api-key"),
    "forbidden": (
        403,
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    "bad_request": (400, "invalid_request_error", "Invalid request"),
    "context_length": (400, "invalid_request_error", ""),
    "content_filter": (400, "invalid_request_error", "Request refused by the safety system"),
    "not_found": (404, "not_found_error", "Not found"),
}


def rfc3339_after(seconds: float) -> str:
    """UTC time `seconds` from now in RFC 3339, as Anthropic writes reset times."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AnthropicFormat(WireFormat):
    name = "anthropic"

    def api_key(self, request: web.Request) -> str | None:
        return request.headers.get("x-api-key", "").strip() or None

    def header_error(self, request: web.Request) -> HttpReply | None:
        if not request.headers.get("anthropic-version"):
            ctx = ErrorContext(message="anthropic-version: header is required")
            return self.error("bad_request", ctx)
        return None

    def parse(self, body: Any, request: web.Request) -> SimRequest:
        if not isinstance(body, dict):
            raise RequestInvalid("The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise RequestInvalid("model: Field required", "model")
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            raise RequestInvalid("max_tokens: Field required", "max_tokens")
        if not positive_int(max_tokens):
            raise RequestInvalid("max_tokens: Input should be an integer >= 1", "max_tokens")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestInvalid("messages: Field required", "messages")
        input_tokens = count_tokens(_blocks_text(body.get("system"), "system"))
        prompt = ""
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
                raise RequestInvalid(
                    f"messages.{i}.role: Input should be 'user' or 'assistant'",
                    f"messages.{i}.role",
                )
            text = _blocks_text(message.get("content"), f"messages.{i}.content")
            input_tokens += count_tokens(text)
            if message["role"] == "user":
                prompt = text
        stop = stop_list(
            body.get("stop_sequences"), "stop_sequences: Input should be a list of strings"
        )
        last = messages[-1]
        asks = last["role"] == "user" and not _has_block(last.get("content"), "tool_result")
        return SimRequest(
            model,
            prompt,
            input_tokens,
            max_tokens,
            stop,
            call_tool=_first_tool(body.get("tools")) if asks else None,
        )

    def success(self, request: SimRequest, result: SimResult) -> dict[str, Any]:
        content: list[dict[str, Any]] = (
            [{"type": "text", "text": result.text}] if result.text else []
        )
        stop_reason = _STOP_REASON[result.finish]
        if request.call_tool is not None and stop_reason != "refusal":
            # As the OpenAI format does: the model calls the first tool offered with the
            # user's text as its input, instead of answering.
            content = [
                {
                    "type": "tool_use",
                    "id": new_id("toolu_"),
                    "name": request.call_tool,
                    "input": {"input": request.prompt},
                }
            ]
            stop_reason = "tool_use"
        return {
            "id": new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": request.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": result.stop_sequence,
            "usage": {
                "input_tokens": result.input_tokens,
                "output_tokens": result.output_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }

    def error(self, kind: ErrorKind, ctx: ErrorContext) -> HttpReply:
        status, type_, message = _ERRORS[kind]
        if kind == "rate_limit":
            unit = "input tokens" if ctx.limited_by == "tokens" else "requests"
            message = (
                f"This request would exceed the rate limit for your organization of "
                f"{ctx.limit or 'n/a'} {unit} per minute. Please reduce the prompt length or "
                "the maximum tokens requested, or try again later."
            )
        elif kind == "context_length":
            message = (
                f"prompt is too long: {ctx.input_tokens} tokens > {ctx.context_window} maximum"
            )
        elif ctx.message:
            message = ctx.message
        request_id = new_id("req_")
        body = {"type": "error", "error": {"type": type_, "message": message}}
        body["request_id"] = request_id
        return HttpReply.json(status, body, {"request-id": request_id})

    def limit_headers(
        self, requests: WindowState | None, tokens: WindowState | None
    ) -> dict[str, str]:
        pattern = "anthropic-ratelimit-{window}-{field}"
        return window_headers(requests, tokens, pattern, rfc3339_after)


def _blocks_text(content: Any, where: str) -> str:
    """Text of a string or a list of content blocks; non-text blocks carry no tokens here."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for block in content:
            if not isinstance(block, dict) or "type" not in block:
                raise RequestInvalid(f"{where}: each block needs a type", where)
            if block["type"] == "text":
                if not isinstance(block.get("text"), str):
                    raise RequestInvalid(f"{where}: text block without text", where)
                texts.append(block["text"])
        return "\n".join(texts)
    raise RequestInvalid(f"{where}: Input should be a string or a list of blocks", where)


def _has_block(content: Any, kind: str) -> bool:
    return isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == kind for b in content
    )


def _first_tool(tools: Any) -> str | None:
    """The name of the first tool a request offers, if any."""
    if not isinstance(tools, list) or not tools:
        return None
    first = tools[0]
    if not isinstance(first, dict) or not isinstance(first.get("name"), str):
        raise RequestInvalid("tools.0.name: Field required", "tools.0.name")
    return first["name"]
