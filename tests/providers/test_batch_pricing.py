"""Batch and cache rates: what a call paid and what batching and caching saved."""

from __future__ import annotations

import pytest

from evalcluster.providers.base import Usage
from evalcluster.providers.pricing import BATCH_DISCOUNT, cost_breakdown, cost_usd
from evalcluster.suite.models import Pricing


def test_batch_pays_half_of_the_sync_price():
    usage = Usage(1_000_000, 100_000)
    sync = cost_breakdown("gpt-4o", usage, batch=False)
    batch = cost_breakdown("gpt-4o", usage, batch=True)
    assert BATCH_DISCOUNT == 0.5
    assert sync.paid == pytest.approx(2.50 + 1.00) and sync.batch_saving == 0
    assert batch.paid == pytest.approx(sync.paid / 2)
    assert batch.batch_saving == pytest.approx(sync.paid / 2) and batch.cache_saving == 0


def test_cache_reads_and_the_batch_discount_stack():
    # Claude Sonnet 4: input 3.0, cache read 0.30, cache write 3.75, output 15 per Mtok.
    usage = Usage(input_tokens=3000, output_tokens=10, cache_read_tokens=2000)
    b = cost_breakdown("claude-sonnet-4-5", usage, batch=True)
    uncached = (3000 * 3.0 + 10 * 15.0) / 1e6
    paid = (1000 * 3.0 + 2000 * 0.30 + 10 * 15.0) / 1e6 * 0.5
    assert b.sync_uncached == pytest.approx(uncached) and b.paid == pytest.approx(paid)
    assert b.batch_saving + b.cache_saving == pytest.approx(uncached - paid)
    assert b.cache_saving == pytest.approx((2000 * (3.0 - 0.30)) / 1e6 * 0.5)


def test_a_suite_override_sets_its_own_discount_and_unknown_models_have_no_price():
    pricing = Pricing(input_per_mtok=1, output_per_mtok=2, batch_discount=0.4)
    b = cost_breakdown("anything", Usage(1_000_000, 0), batch=True, pricing_override=pricing)
    assert b.paid == pytest.approx(0.4)
    assert cost_breakdown("no-such-model", Usage(10, 10), batch=True) is None
    assert (
        cost_usd("gpt-4o", Usage(10, 10))
        == cost_breakdown("gpt-4o", Usage(10, 10), batch=False).paid
    )


def test_the_discount_is_validated_and_left_out_of_dumps_when_unset():
    with pytest.raises(ValueError, match="batch_discount"):
        Pricing(input_per_mtok=1, output_per_mtok=1, batch_discount=1.5)
    assert "batch_discount" not in Pricing(input_per_mtok=1, output_per_mtok=1).model_dump()
