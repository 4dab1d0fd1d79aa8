"""What every wire format implements, and the format-neutral values passed between them.

The server decides *what* happens to a request (answer, limit, fault, forced outcome); a
`WireFormat` only says how that looks on the wire of one provider: where the key is, how a
request parses, and the exact shape of a success or an error.
"""

from __future__ import annotations

import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

from aiohttp import web

from evalcluster.simulator.ratelimit import LimitName, WindowState

FinishKind = Literal["stop", "length", "stop_sequence", "content_filter", "blocked"]
ErrorKind = Literal[
    "rate_limit",
    "quota",
    "credits",
    "server_error",
    "unavailable",
    "overloaded",
    "auth_missing",
    "auth_invalid",
    "forbidden",
    "bad_request",
    "context_length",
    "content_filter",
    "not_found",
]


class RequestInvalid(Exception):
    """The request body breaks the wire format's rules; becomes that format's 400."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True, slots=True)
class SimRequest:
    """A parsed request, whatever its wire format."""

    model: str
    prompt: str  # the last user message: what the model answers
    input_tokens: int  # count_tokens over every message text, system prompt included
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    include_cost: bool = False  # OpenRouter's "usage": {"include": true}
    reference: str | None = None  # the sample's answer, from the x-evalcluster-reference header
    # Set when the request offers tools and its last turn is the user's: the simulated model
    # then calls this tool (the first offered) instead of answering; after a tool result it
    # answers in text.
    call_tool: str | None = None


@dataclass(frozen=True, slots=True)
class SimResult:
    """The model's output for one request, before it is put on the wire."""

    text: str
    finish: FinishKind
    input_tokens: int
    output_tokens: int
    stop_sequence: str | None = None
    thinking_tokens: int = 0  # reported by Gemini only, on top of output_tokens
    cost_usd: float | None = None


@dataclass(frozen=True, slots=True)
class ErrorContext:
    """Facts an error message may quote. None of them is ever an API key."""

    model: str = "unknown"
    message: str | None = None  # overrides the format's stock message (bad_request)
    param: str | None = None
    retry_after_s: float | None = None
    limited_by: LimitName | None = None
    limit: int | None = None
    requested: int | None = None  # tokens a too-large request asked for
    input_tokens: int = 0
    context_window: int | None = None


@dataclass(slots=True)
class HttpReply:
    """A response ready to send."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    @classmethod
    def json(cls, status: int, data: Any, headers: dict[str, str] | None = None) -> HttpReply:
        return cls(status, dumps(data), dict(headers or {}))


def dumps(data: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def stop_list(value: Any, error: str) -> tuple[str, ...]:
    """A request's list of stop strings, empty ones dropped; absent is none. Anything but a
    list of strings raises `RequestInvalid(error)`."""
    stop = value or []
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise RequestInvalid(error)
    return tuple(s for s in stop if s)


def positive_int(value: Any) -> bool:
    """Whether `value` is a JSON integer >= 1 (a boolean is not one)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def window_headers(
    requests: WindowState | None,
    tokens: WindowState | None,
    pattern: str,
    reset: Callable[[float], str],
) -> dict[str, str]:
    """Rate-limit headers for the request and token windows: `pattern` names each with
    ``{field}`` (limit, remaining, reset) and ``{window}`` (requests, tokens); `reset` writes
    the seconds until the window resets as the vendor does."""
    headers: dict[str, str] = {}
    for window, state in (("requests", requests), ("tokens", tokens)):
        if state is not None:
            headers[pattern.format(field="limit", window=window)] = str(state.limit)
            headers[pattern.format(field="remaining", window=window)] = str(state.remaining)
            headers[pattern.format(field="reset", window=window)] = reset(state.reset_s)
    return headers


def new_id(prefix: str, length: int = 24) -> str:
    """A provider-style random id such as ``chatcmpl-3f2a...``."""
    return prefix + uuid.uuid4().hex[:length]


class WireFormat(ABC):
    """One provider's wire format."""

    name: ClassVar[str]

    @abstractmethod
    def api_key(self, request: web.Request) -> str | None:
        """The API key the request carries, or None."""

    def header_error(self, request: web.Request) -> HttpReply | None:
        """A reply for a missing required header other than the key; None when all is there."""
        return None

    @abstractmethod
    def parse(self, body: Any, request: web.Request) -> SimRequest:
        """Parse a JSON body. Raises `RequestInvalid`."""

    @abstractmethod
    def success(self, request: SimRequest, result: SimResult) -> dict[str, Any]:
        """The 200 body for `result` (also used for refusals and blocked prompts)."""

    @abstractmethod
    def error(self, kind: ErrorKind, ctx: ErrorContext) -> HttpReply:
        """The format's error response of `kind`."""

    def content_filter(self, request: SimRequest, result: SimResult) -> HttpReply:
        """The reply when the provider's safety system refuses: by default a 200 refusal."""
        refused = replace(result, text="", output_tokens=0, finish="content_filter")
        return HttpReply.json(200, self.success(request, refused))

    def limit_headers(
        self, requests: WindowState | None, tokens: WindowState | None
    ) -> dict[str, str]:
        """Rate-limit headers sent on every response of this format (none by default)."""
        return {}
