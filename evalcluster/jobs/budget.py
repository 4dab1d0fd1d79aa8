"""Projected cost of a request, reserved against the run's budget before it is sent."""

from __future__ import annotations

from evalcluster.providers.base import CompletionRequest
from evalcluster.providers.pricing import cost_usd, projected_usage
from evalcluster.suite.models import ProviderConfig


def projected_cost(provider: ProviderConfig, request: CompletionRequest) -> float:
    """Upper-bound cost: the request's `projected_usage` at the provider's prices."""
    return cost_usd(request.model, projected_usage(request), provider.pricing, None) or 0.0
