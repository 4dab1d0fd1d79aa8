"""What a call cost, in US dollars, and how many tokens a request will be charged ahead.

Precedence in `cost_usd`: a cost the provider reported itself (OpenRouter's `usage.cost`) wins
over a suite's `pricing` override, which wins over the table below. A model in none of them has
no cost (None), never a guessed one.

The table is USD per million tokens from each vendor's public price page
(openai.com/api/pricing, docs.anthropic.com/en/docs/about-claude/pricing,
ai.google.dev/gemini-api/docs/pricing), standard tier, text. Model names match exactly or by
the longest table key they start with ("gpt-4o-2024-08-06" -> "gpt-4o"), after dropping a
vendor prefix ("openai/gpt-4o", "models/gemini-2.5-pro").

Token conventions (see `Usage`): `input_tokens` includes cache reads and writes, which are
also counted separately; cached tokens are priced at their own rate when the table knows it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from evalcluster.providers.base import CompletionRequest, Usage
from evalcluster.suite.models import Pricing

__all__ = [
    "BATCH_DISCOUNT",
    "DEFAULT_OUTPUT_TOKENS",
    "CostBreakdown",
    "cost_breakdown",
    "PRICES",
    "ModelPrice",
    "cost_usd",
    "estimate_input_tokens",
    "estimate_request_tokens",
    "estimate_tokens",
    "output_allowance",
    "price_for",
    "projected_usage",
]

DEFAULT_OUTPUT_TOKENS = 1024
# OpenAI's Batch API, Anthropic's Message Batches and Gemini's batch mode all bill 50% of the
# standard rates, cache reads and writes included (their pricing pages, "Batch").
BATCH_DISCOUNT = 0.5


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens. Cache rates of None are billed as plain input.

    `long_context_above`: prompts with more input tokens than this are billed at the `long_*`
    rates for the whole request (Gemini 2.5 Pro and Claude Sonnet 4.x beyond 200k).
    """

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    long_context_above: int | None = None
    long_input: float | None = None
    long_output: float | None = None
    long_cache_read: float | None = None
    batch_discount: float = BATCH_DISCOUNT


def _p(*args: float | None, **kw: float | int | None) -> ModelPrice:
    return ModelPrice(*args, **kw)  # type: ignore[arg-type]


_SONNET_4 = _p(3.0, 15.0, 0.30, 3.75, long_context_above=200_000, long_input=6.0,
               long_output=22.5, long_cache_read=0.60)  # fmt: skip
_OPUS_4 = _p(15.0, 75.0, 1.50, 18.75)
_OPUS_45 = _p(5.0, 25.0, 0.50, 6.25)

PRICES: dict[str, ModelPrice] = {
    # OpenAI: cached input is discounted; there is no charge for writing the cache.
    "gpt-4o": _p(2.50, 10.00, 1.25),
    "gpt-4o-mini": _p(0.15, 0.60, 0.075),
    "gpt-4.1": _p(2.00, 8.00, 0.50),
    "gpt-4.1-mini": _p(0.40, 1.60, 0.10),
    "gpt-4.1-nano": _p(0.10, 0.40, 0.025),
    "gpt-5": _p(1.25, 10.00, 0.125),
    "gpt-5-mini": _p(0.25, 2.00, 0.025),
    "gpt-5-nano": _p(0.05, 0.40, 0.005),
    "o1": _p(15.00, 60.00, 7.50),
    "o3": _p(2.00, 8.00, 0.50),
    "o3-pro": _p(20.00, 80.00),
    "o3-mini": _p(1.10, 4.40, 0.55),
    "o4-mini": _p(1.10, 4.40, 0.275),
    # Anthropic: cache writes are the 5-minute rate (1.25x input), reads 0.1x input.
    "claude-opus-4": _OPUS_4,
    "claude-opus-4-0": _OPUS_4,
    "claude-opus-4-1": _OPUS_4,
    "claude-opus-4-5": _OPUS_45,
    "claude-opus-4-6": _OPUS_45,
    "claude-opus-4-7": _OPUS_45,
    "claude-opus-4-8": _OPUS_45,
    "claude-sonnet-4": _SONNET_4,
    "claude-sonnet-4-0": _SONNET_4,
    "claude-sonnet-4-5": _SONNET_4,
    "claude-sonnet-4-6": _SONNET_4,
    "claude-3-7-sonnet": _p(3.0, 15.0, 0.30, 3.75),
    "claude-3-5-sonnet": _p(3.0, 15.0, 0.30, 3.75),
    "claude-haiku-4-5": _p(1.0, 5.0, 0.10, 1.25),
    "claude-3-5-haiku": _p(0.80, 4.0, 0.08, 1.0),
    "claude-3-haiku": _p(0.25, 1.25, 0.03, 0.30),
    # Google: thinking tokens are billed as output; cached content has its own read rate.
    "gemini-2.5-pro": _p(
        1.25,
        10.0,
        0.125,
        long_context_above=200_000,
        long_input=2.50,
        long_output=15.0,
        long_cache_read=0.25,
    ),  # fmt: skip
    "gemini-2.5-flash": _p(0.30, 2.50, 0.03),
    "gemini-2.5-flash-lite": _p(0.10, 0.40, 0.01),
    "gemini-2.0-flash": _p(0.10, 0.40, 0.025),
    "gemini-2.0-flash-lite": _p(0.075, 0.30),
}


@functools.lru_cache(maxsize=1024)  # a provider actor prices every answer by model name
def price_for(model: str) -> ModelPrice | None:
    """The table's price of `model`, by exact name or longest matching prefix."""
    name = model.strip().lower()
    if "/" in name:  # "openai/gpt-4o" (OpenRouter), "models/gemini-2.5-pro" (Gemini)
        name = name.rsplit("/", 1)[1]
    if name in PRICES:
        return PRICES[name]
    best = ""
    for key in PRICES:
        # A prefix must end at a separator: "o3" prices "o3-2025-04-16", not "o3x".
        if name.startswith(key) and name[len(key)] in "-@:." and len(key) > len(best):
            best = key
    return PRICES[best] if best else None


def cost_usd(
    model: str,
    usage: Usage,
    pricing_override: Pricing | None = None,
    provider_cost: float | None = None,
) -> float | None:
    """US dollars for one call, or None when nothing prices `model`."""
    if provider_cost is not None:
        return float(provider_cost)
    price = _from_override(pricing_override) if pricing_override else price_for(model)
    if price is None:
        return None
    long = price.long_context_above is not None and usage.input_tokens > price.long_context_above
    input_rate = price.long_input if long and price.long_input is not None else price.input
    output_rate = price.long_output if long and price.long_output is not None else price.output
    read_rate = price.long_cache_read if long and price.long_cache_read else price.cache_read
    write_rate = price.cache_write
    if long and write_rate is not None:
        write_rate *= input_rate / price.input  # the long-context uplift applies to writes too
    cached = usage.cache_read_tokens + usage.cache_write_tokens
    uncached = max(0, usage.input_tokens - cached)
    dollars = (
        uncached * input_rate
        + usage.cache_read_tokens * (input_rate if read_rate is None else read_rate)
        + usage.cache_write_tokens * (input_rate if write_rate is None else write_rate)
        + usage.output_tokens * output_rate
    )
    return dollars / 1_000_000


def _from_override(pricing: Pricing) -> ModelPrice:
    return ModelPrice(
        input=pricing.input_per_mtok,
        output=pricing.output_per_mtok,
        cache_read=pricing.cache_read_per_mtok,
        cache_write=pricing.cache_write_per_mtok,
        batch_discount=pricing.batch_discount or BATCH_DISCOUNT,
    )


class CostBreakdown(NamedTuple):
    """What one call cost, what it would have cost sent sync with no cache, and the saving
    of each. `batch_saving + cache_saving == sync_uncached - paid`."""

    paid: float
    sync_uncached: float
    batch_saving: float
    cache_saving: float


def cost_breakdown(
    model: str, usage: Usage, *, batch: bool, pricing_override: Pricing | None = None
) -> CostBreakdown | None:
    """US dollars paid for one call sent through the batch API or not, with the cache reads
    and writes in `usage`, and what batching and caching saved; None when nothing prices
    `model`. The batch discount applies to every rate, cache rates included; the batch
    saving is counted on the uncached price, the cache saving at the rate paid."""
    price = _from_override(pricing_override) if pricing_override else price_for(model)
    if price is None:
        return None
    cached = cost_usd(model, usage, pricing_override)
    uncached = cost_usd(model, replace(usage, cache_read_tokens=0, cache_write_tokens=0),
                        pricing_override)  # fmt: skip
    assert cached is not None and uncached is not None
    factor = price.batch_discount if batch else 1.0
    return CostBreakdown(
        paid=cached * factor,
        sync_uncached=uncached,
        batch_saving=uncached * (1.0 - factor),
        cache_saving=(uncached - cached) * factor,
    )


def estimate_tokens(text: str) -> int:
    """A provider-neutral token estimate: about one token per four characters."""
    return math.ceil(len(text) / 4) if text else 0


def estimate_input_tokens(request: CompletionRequest) -> int:
    """The estimated input of `request`: `estimate_tokens` of each message."""
    return sum(estimate_tokens(m.content) for m in request.messages)


def output_allowance(max_tokens: Any, default: int = DEFAULT_OUTPUT_TOKENS) -> int:
    """The most output a request may produce: its `max_tokens`, else `default`."""
    return int(max_tokens) if max_tokens else default


def projected_usage(
    request: CompletionRequest, *, default_output_tokens: int = DEFAULT_OUTPUT_TOKENS
) -> Usage:
    """The most a request will use, ahead of the call: estimated input plus the most output
    the request allows (`max_tokens`, else `default_output_tokens`), the way providers
    themselves charge a token-per-minute budget. Rate limiters and budgets both charge it."""
    return Usage(
        estimate_input_tokens(request),
        output_allowance(request.params.get("max_tokens"), default_output_tokens),
        estimated=True,
    )


def estimate_request_tokens(
    request: CompletionRequest, *, default_output_tokens: int = DEFAULT_OUTPUT_TOKENS
) -> int:
    """Tokens to charge a rate limiter ahead of a call (`projected_usage`, in all)."""
    return projected_usage(request, default_output_tokens=default_output_tokens).total_tokens
