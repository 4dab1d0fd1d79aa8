"""What batching and prompt caching saved reaches the end-of-run table (only when non-zero)
and the MLflow metrics of each target's child run (`target_results`)."""

from __future__ import annotations

import io

from rich.console import Console

from evalcluster.jobs.display import result_tables
from evalcluster.jobs.summary import target_results
from evalcluster.suite.loader import load_suite
from tests.conftest import openai_provider, write_suite


def _target(saved_batch: float, saved_cache: float) -> dict:
    return {
        "rows": 4, "samples": 4, "epochs": 1, "errors": 0, "cache_hits": 0,
        "input_tokens": 40, "output_tokens": 8, "cost_usd": 0.5, "judge_cost_usd": 0.0,
        "judge_input_tokens": 0, "judge_output_tokens": 0, "latency_ms_p50": 10.0,
        "latency_ms_p95": 20.0, "served_by": {"p": 4}, "scorers": {},
        "usd_saved_batch": saved_batch, "usd_saved_cache": saved_cache,
    }  # fmt: skip


def _render(summary: dict) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    for table in result_tables(summary, []):
        console.print(table)
    return console.export_text()


def test_the_table_shows_savings_only_when_there_are_some():
    text = _render({"targets": {"a": _target(0.5, 0.0), "b": _target(0.25, 0.0)}})
    assert "saved batch $" in text and "saved cache $" not in text
    assert "0.5" in text
    plain = _render({"targets": {"a": _target(0.0, 0.0)}})
    assert "saved" not in plain
    older = _render(
        {"targets": {"a": {k: v for k, v in _target(0, 0).items() if "saved" not in k}}}
    )
    assert "saved" not in older  # a summary.json from before the savings were recorded


def test_child_runs_get_the_savings_as_metrics(tmp_path):
    path = write_suite(
        tmp_path,
        providers={"p": openai_provider("http://127.0.0.1:9")},  # never called
        targets=[{"name": "a", "provider": "p", "model": "m"}],
    )
    [result] = target_results(load_suite(path), {"targets": {"a": _target(0.5, 0.125)}})
    assert result.metrics["cost_usd/saved_batch"] == 0.5
    assert result.metrics["cost_usd/saved_cache"] == 0.125
