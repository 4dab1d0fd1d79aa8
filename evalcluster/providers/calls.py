"""The outcome of one provider call as the provider actor returns it: an answer or a typed
failure, never a raise. It lives with the provider contract so the store (the answer cache)
can read and write it without importing `actors`."""

from __future__ import annotations

from dataclasses import dataclass

from evalcluster.pickling import pickled_as_tuple


@pickled_as_tuple  # crosses Ray once per request
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
    batch: bool = False  # answered through the vendor's batch API (billed at the batch rate)
    cached_input_tokens: int = 0  # input tokens read from the vendor's prompt cache
    # What this call would have cost sent sync with no prompt cache, less `cost_usd`, split
    # by cause (`pricing.cost_breakdown`); 0 when nothing prices the model.
    usd_saved_batch: float = 0.0
    usd_saved_cache: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error_kind is None
