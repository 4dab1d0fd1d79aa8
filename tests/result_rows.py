"""Result rows for the tests that write a lake directly (`commit_shard`): every base column of
`evalcluster.rows.ResultRow` with a plain value, so a column added to the contract is added
here once. Callers override what their test is about."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def result_row(
    run_id: str,
    target: str,
    n: int,
    *,
    scores: Mapping[str, float | None] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A valid result row; `n` makes it unique. `scores` are its scorers' values (by default
    ``exact`` 1.0 and ``numeric`` 1.0, null when n % 5 == 0); `overrides` replace columns."""
    if scores is None:
        scores = {"exact": 1.0, "numeric": None if n % 5 == 0 else 1.0}
    row: dict[str, Any] = {
        "run_id": run_id,
        "suite": "arithmetic",
        "suite_version": "v-abc123",
        "target": target,
        "provider": "sim-openai",
        "served_by": "sim-openai",
        "model": "sim-1",
        "sample_id": f"s{n}",
        "epoch": 0,
        "prompt": f"What is {n}+1?",
        "reference": str(n + 1),
        "output": str(n + 1),
        "finish_reason": "stop",
        "input_tokens": 10 + n,
        "output_tokens": 2,
        "usage_estimated": False,
        "cost_usd": 0.000015,
        "latency_ms": 12.5,
        "attempts": 1,
        "cache_hit": False,
        "error_kind": None,
        "error": None,
        "request_hash": f"h{n:08d}",
        "finished_at": datetime(2026, 11, 26, 12, 0, n % 60, tzinfo=UTC),
        "metadata": '{"level": "easy"}',
        "judge": None,
        "judge_input_tokens": 0,
        "judge_output_tokens": 0,
        "judge_cost_usd": 0.0,
        "batch": False,
        "cached_input_tokens": 0,
        "usd_saved_batch": 0.0,
        "usd_saved_cache": 0.0,
    }
    row.update({f"score_{name}": value for name, value in scores.items()})
    row.update(overrides)
    return row
