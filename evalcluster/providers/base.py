"""The provider-neutral contract every adapter implements.

An adapter turns a `CompletionRequest` into one HTTP call in its wire format and returns a
`Completion`, or raises one of the `ProviderError` subclasses of `evalcluster.errors`. Adapters
know nothing of rate limits, retries, breakers or budgets: those wrap them (see `actors/`).
"""

from __future__ import annotations

import enum
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from evalcluster.pickling import pickled_as_tuple

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call the model asked for. `arguments` is JSON text, as the model wrote it."""

    id: str
    name: str
    arguments: str = "{}"


def tool_arguments(text: str) -> dict[str, Any]:
    """The JSON object a tool call's `arguments` text holds; {} when the model wrote anything
    else (formats that send arguments as an object cannot carry invalid JSON)."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call; `parameters` is its JSON Schema."""

    name: str
    description: str | None = None
    parameters: Mapping[str, Any] | None = None


def function_declaration(tool: Tool) -> dict[str, Any]:
    """`tool` as OpenAI's `function` object and Gemini's `FunctionDeclaration` both write it:
    its name, and its description and parameters when it has them."""
    declaration: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        declaration["description"] = tool.description
    if tool.parameters is not None:
        declaration["parameters"] = dict(tool.parameters)
    return declaration


@pickled_as_tuple  # requests cross Ray by the thousand
@dataclass(frozen=True, slots=True)
class Message:
    """One turn. An assistant turn may carry `tool_calls`; a "tool" turn answers the call
    `tool_call_id` with `content` (its `name` is the function's, for formats that need it)."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None


@pickled_as_tuple
@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """One chat completion to make. `params` are the target's generation parameters.

    `reference` is the sample's reference answer, for `kind: simulated` providers only: their
    adapter sends it to the simulator (header ``x-evalcluster-reference``) so it can answer
    right with probability `accuracy`; every other adapter ignores it. It is not part of the
    request's cache identity (`jobs.samples.request_hash`), being a function of the sample."""

    model: str
    messages: tuple[Message, ...]
    params: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None
    tools: tuple[Tool, ...] = ()
    # "auto" | "none" | "required" | {"name": <tool>}: OpenAI's choices, format-neutral.
    tool_choice: str | Mapping[str, Any] | None = None

    @property
    def system(self) -> str | None:
        parts = [m.content for m in self.messages if m.role == "system"]
        return "\n\n".join(parts) if parts else None

    @property
    def chat(self) -> tuple[Message, ...]:
        return tuple(m for m in self.messages if m.role != "system")


class FinishReason(enum.StrEnum):
    STOP = "stop"
    LENGTH = "length"  # OpenAI "length", Anthropic "max_tokens", Gemini "MAX_TOKENS"
    CONTENT_FILTER = "content_filter"  # OpenAI "content_filter", Gemini "SAFETY" and kin
    REFUSAL = "refusal"  # Anthropic "refusal"
    BLOCKED = "blocked"  # Gemini: the prompt was blocked, no candidates
    TOOL_CALLS = "tool_calls"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0  # already included in output_tokens
    estimated: bool = False  # True when the provider reported no usage and we counted

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class RateLimitSnapshot:
    """The provider's own view of its limits, parsed from response headers. None = not sent."""

    limit_requests: int | None = None
    limit_tokens: int | None = None
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests_s: float | None = None  # seconds from the response until the window resets
    reset_tokens_s: float | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    finish_reason: FinishReason
    usage: Usage
    latency_ms: float
    model: str | None = None  # the model name the provider reports having used
    raw_finish_reason: str | None = None
    provider_cost_usd: float | None = None  # OpenRouter's usage.cost, when present
    rate_limits: RateLimitSnapshot | None = None
    tool_calls: tuple[ToolCall, ...] = ()


class ProviderAdapter(ABC):
    """One wire format. Instances are cheap; the transport owns the connection pool."""

    kind: ClassVar[str]

    @abstractmethod
    async def complete(self, request: CompletionRequest) -> Completion:
        """Make one call. Raises `evalcluster.errors.ProviderError` subclasses on failure."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook: most adapters own nothing
        """Release what the adapter owns (its transport), if anything."""
