"""Forced outcomes: what ``x-sim-force: <kind>`` (or the config's `force`) makes a request get.

Each kind looks as the wire format's provider would send it; a few exist in one format only
and are mapped to that format's nearest relative elsewhere:

- ``credits``: OpenRouter's 402 on the OpenAI format; Anthropic's 400 "credit balance is too
  low"; Gemini's 429 per-day quota.
- ``content_filter``: OpenAI 400 ``content_policy_violation``; Anthropic 200 ``refusal``;
  Gemini 200 ``SAFETY`` candidate.
- ``blocked``: Gemini ``promptFeedback`` without candidates; OpenAI 200 with
  ``finish_reason: content_filter`` and null content; Anthropic 200 ``refusal``, no content.
- ``error_in_200``, ``invalid_json``, ``html_502``, ``empty``: the same bytes in every format.

``length`` keeps the first half of the answer's tokens. ``timeout`` and ``drop`` are carried
out by the server (`Hang`, `Drop`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from evalcluster.simulator.config import ForceKind, SimulatorConfig
from evalcluster.simulator.formats.base import (
    ErrorContext,
    HttpReply,
    SimRequest,
    SimResult,
    WireFormat,
    dumps,
)
from evalcluster.simulator.tokens import truncate_tokens

HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_PLAIN_ERRORS = {
    "500": "server_error",
    "503": "unavailable",
    "overloaded": "overloaded",
    "auth": "auth_invalid",
    "forbidden": "forbidden",
    "credits": "credits",
}


@dataclass(frozen=True, slots=True)
class Hang:
    """Hold the request `seconds` without answering, then close the connection."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Drop:
    """Close the connection without a response."""


@dataclass(frozen=True, slots=True)
class Forced:
    """A forced outcome and the tokens it served (only ``length`` serves any)."""

    action: HttpReply | Hang | Drop
    tokens_in: int = 0
    tokens_out: int = 0


def retry_headers(delay_s: float) -> dict[str, str]:
    """``retry-after`` in whole seconds (rounded up) and ``retry-after-ms``."""
    ms = max(0, round(delay_s * 1000))
    return {"retry-after": str(math.ceil(ms / 1000)), "retry-after-ms": str(ms)}


def forced(
    kind: ForceKind,
    fmt: WireFormat,
    request: SimRequest,
    result: SimResult,
    config: SimulatorConfig,
    retry_after_s: float | None,
) -> Forced:
    """The outcome `kind` forces. `retry_after_s` is the x-sim-retry-after override, if any."""
    ctx = ErrorContext(model=request.model, input_tokens=request.input_tokens)
    if kind in _PLAIN_ERRORS:
        return Forced(fmt.error(_PLAIN_ERRORS[kind], ctx))
    if kind == "429":
        delay = config.forced_retry_after_s if retry_after_s is None else retry_after_s
        ctx = replace(ctx, retry_after_s=delay, limited_by="requests", limit=config.rpm)
        return Forced(_with_headers(fmt.error("rate_limit", ctx), retry_headers(delay)))
    if kind == "quota":
        reply = fmt.error("quota", replace(ctx, retry_after_s=retry_after_s))
        extra = retry_headers(retry_after_s) if retry_after_s is not None else {}
        return Forced(_with_headers(reply, extra))
    if kind == "bad_request":
        return Forced(fmt.error("bad_request", replace(ctx, message="Invalid request (forced).")))
    if kind == "context_length":
        window = config.context_window or max(1, request.input_tokens - 1)
        return Forced(fmt.error("context_length", replace(ctx, context_window=window)))
    if kind == "content_filter":
        return Forced(fmt.content_filter(request, result))
    if kind == "blocked":
        blocked = replace(result, text="", output_tokens=0, finish="blocked", stop_sequence=None)
        return Forced(HttpReply.json(200, fmt.success(request, blocked)))
    if kind == "length":
        kept = result.output_tokens // 2
        cut = replace(
            result,
            text=truncate_tokens(result.text, kept),
            output_tokens=kept,
            finish="length",
            stop_sequence=None,
        )
        reply = HttpReply.json(200, fmt.success(request, cut))
        return Forced(reply, cut.input_tokens, cut.output_tokens)
    if kind == "error_in_200":
        body = {"error": {"code": 502, "message": "Provider returned error (forced)"}}
        return Forced(HttpReply.json(200, body))
    if kind == "invalid_json":
        whole = dumps(fmt.success(request, result))
        return Forced(HttpReply(200, whole[: len(whole) // 2]))
    if kind == "html_502":
        return Forced(HttpReply(502, HTML_502, content_type="text/html"))
    if kind == "empty":
        return Forced(HttpReply(200, b""))
    if kind == "timeout":
        return Forced(Hang(config.hang_s))
    if kind == "drop":
        return Forced(Drop())
    raise ValueError(f"unknown forced outcome {kind!r}")


def _with_headers(reply: HttpReply, headers: dict[str, str]) -> HttpReply:
    reply.headers.update(headers)
    return reply
