"""What a provider actor returns for each request: an answer or a typed failure, never a raise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class CallResult:
    served_by: (
        str  # the provider that produced this outcome (differs from the target's on fallback)
    )
    attempts: int
    latency_ms: float
    text: str | None = None
    finish_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    usage_estimated: bool = False
    cost_usd: float = 0.0
    error_kind: str | None = None
    error: str | None = None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Pickled once per request between provider actor and shard: a plain tuple is 2-4x
        # quicker than the dataclass default (which walks fields() for every object).
        return (
            CallResult,
            (
                self.served_by,
                self.attempts,
                self.latency_ms,
                self.text,
                self.finish_reason,
                self.input_tokens,
                self.output_tokens,
                self.usage_estimated,
                self.cost_usd,
                self.error_kind,
                self.error,
            ),
        )

    @property
    def ok(self) -> bool:
        return self.error_kind is None
