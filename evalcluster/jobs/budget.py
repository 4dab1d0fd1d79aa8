"""Projected cost of a request, reserved against the run's budget before it is sent."""

from __future__ import annotations

from evalcluster.providers.base import CompletionRequest, Usage
from evalcluster.providers.pricing import cost_usd, estimate_tokens
from evalcluster.spec.models import ProviderConfig

DEFAULT_MAX_OUTPUT_TOKENS = 1024


def projected_cost(provider: ProviderConfig, request: CompletionRequest) -> float:
    """Upper-bound cost: estimated input plus the most output the request allows."""
    input_tokens = sum(estimate_tokens(m.content) for m in request.messages)
    output_tokens = int(request.params.get("max_tokens") or DEFAULT_MAX_OUTPUT_TOKENS)
    usage = Usage(input_tokens, output_tokens, estimated=True)
    return cost_usd(request.model, usage, provider.pricing, None) or 0.0
