from __future__ import annotations

import pytest

from evalcluster.providers.base import Usage
from evalcluster.providers.pricing import (
    DEFAULT_OUTPUT_TOKENS,
    cost_usd,
    estimate_request_tokens,
    estimate_tokens,
    output_allowance,
    price_for,
    projected_usage,
)
from evalcluster.suite.models import Pricing

from .conftest import ask


def test_table_prices_a_known_model() -> None:
    # gpt-4o-mini: $0.15 in, $0.60 out per million tokens.
    assert cost_usd("gpt-4o-mini", Usage(1_000_000, 1_000_000)) == pytest.approx(0.75)
    assert cost_usd("gpt-4o", Usage(1000, 500)) == pytest.approx((1000 * 2.5 + 500 * 10) / 1e6)


@pytest.mark.parametrize(
    ("model", "same_as"),
    [("gpt-4o-2024-08-06", "gpt-4o"), ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
     ("openai/gpt-4.1-mini", "gpt-4.1-mini"), ("claude-sonnet-4-20250514", "claude-sonnet-4"),
     ("claude-3-5-haiku-latest", "claude-3-5-haiku"), ("models/gemini-2.5-pro", "gemini-2.5-pro"),
     ("gemini-2.5-flash-lite-preview-06-17", "gemini-2.5-flash-lite"), ("o3-2025-04-16", "o3"),
     ("claude-opus-4-1-20250805", "claude-opus-4-1"), ("O4-MINI", "o4-mini")],
)  # fmt: skip
def test_dated_and_prefixed_names_match_their_family(model: str, same_as: str) -> None:
    assert price_for(model) is price_for(same_as) is not None


def test_unknown_model_has_no_cost_and_prefixes_need_a_separator() -> None:
    assert cost_usd("sim-1", Usage(100, 100)) is None
    assert price_for("o3x") is None
    assert price_for("gpt-4o") != price_for("gpt-4o-mini")


def test_override_wins_over_table_and_provider_cost_wins_over_both() -> None:
    usage = Usage(2_000_000, 1_000_000)
    override = Pricing(input_per_mtok=1.0, output_per_mtok=3.0)
    assert cost_usd("gpt-4o", usage, override) == pytest.approx(5.0)
    assert cost_usd("sim-1", usage, override) == pytest.approx(5.0)
    assert cost_usd("gpt-4o", usage, override, provider_cost=0.0123) == 0.0123
    assert cost_usd("unknown", usage, None, provider_cost=0.0) == 0.0


def test_cache_reads_and_writes_are_priced_at_their_rates() -> None:
    # claude-sonnet-4: in 3.00, out 15.00, cache read 0.30, cache write 3.75.
    usage = Usage(input_tokens=10_000 + 20_000 + 40_000, output_tokens=0,
                  cache_read_tokens=20_000, cache_write_tokens=40_000)  # fmt: skip
    assert cost_usd("claude-sonnet-4-5", usage) == pytest.approx((30_000 + 6_000 + 150_000) / 1e6)
    # An override without cache rates bills cached tokens as plain input.
    plain = Pricing(input_per_mtok=1.0, output_per_mtok=1.0)
    assert cost_usd("x", usage, plain) == pytest.approx(0.07)
    cached = Pricing(input_per_mtok=1.0, output_per_mtok=1.0, cache_read_per_mtok=0.1,
                     cache_write_per_mtok=2.0)  # fmt: skip
    assert cost_usd("x", usage, cached) == pytest.approx((10_000 + 2_000 + 80_000) / 1e6)


def test_long_context_tier_applies_above_its_threshold() -> None:
    short = cost_usd("gemini-2.5-pro", Usage(200_000, 1_000_000))
    long = cost_usd("gemini-2.5-pro", Usage(200_001, 1_000_000))
    assert short == pytest.approx(0.25 + 10.0)
    assert long == pytest.approx(200_001 * 2.5 / 1e6 + 15.0)


def test_token_estimates() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    request = ask("x" * 40, system="y" * 8, max_tokens=16)
    assert estimate_request_tokens(request) == 10 + 2 + 16
    assert estimate_request_tokens(ask("x" * 40)) == 10 + 1024
    assert estimate_request_tokens(ask("x" * 40), default_output_tokens=5) == 15


def test_projected_usage_is_what_limits_and_budgets_both_charge() -> None:
    from evalcluster.jobs.budget import projected_cost
    from evalcluster.suite.models import ProviderConfig

    request = ask("x" * 40, system="y" * 8, max_tokens=16)
    usage = projected_usage(request)
    assert (usage.input_tokens, usage.output_tokens, usage.estimated) == (12, 16, True)
    assert usage.total_tokens == estimate_request_tokens(request)
    assert projected_usage(ask("x" * 40)).output_tokens == DEFAULT_OUTPUT_TOKENS
    provider = ProviderConfig(
        kind="openai", pricing=Pricing(input_per_mtok=1.0, output_per_mtok=2.0)
    )
    assert projected_cost(provider, request) == pytest.approx((12 * 1.0 + 16 * 2.0) / 1e6)
    assert projected_cost(ProviderConfig(kind="openai"), ask("x", model="unpriced")) == 0.0


def test_output_allowance_is_max_tokens_else_the_default() -> None:
    assert output_allowance(64) == 64
    assert output_allowance(None) == DEFAULT_OUTPUT_TOKENS
    assert output_allowance(0, default=7) == 7
