"""Prompt caching over real HTTP against the simulator: a run whose samples share a long system
prompt reads it from the vendor's cache after the first request (Anthropic by the
`cache_control` mark the adapter puts on it, OpenAI automatically, on the sync path), and each
row records the cached tokens, is priced at the cache rate and says what the cache saved."""

from __future__ import annotations

import pytest

from evalcluster.jobs.driver import run_suite
from evalcluster.jobs.options import RunOptions
from evalcluster.jobs.prepare import prepare_suite
from evalcluster.simulator import SimulatorConfig, SimulatorThread
from evalcluster.store.fs import open_store
from evalcluster.store.lake import read_results
from tests.conftest import write_suite

SAMPLES = 12
# About 3,000 tokens by the simulator's count, 4,000 by the adapter's estimate: cacheable.
LONG_SYSTEM = "Follow these rules. " + " ".join(f"rule{i} applies." for i in range(1000))
PRICE = {
    "input_per_mtok": 1.0,
    "output_per_mtok": 2.0,
    "cache_read_per_mtok": 0.1,
    "cache_write_per_mtok": 1.25,
}


@pytest.fixture
def sim():
    with SimulatorThread(SimulatorConfig(accuracy=1.0)) as sim:
        yield sim


def _provider(kind: str, url: str, **extra) -> dict:
    base = f"{url}/v1" if kind == "openai" else url
    return {"kind": kind, "base_url": base, "api_key_env": "EVALCLUSTER_TEST_KEY",
            "pricing": PRICE, "max_concurrency": 1, **extra}  # fmt: skip


def _run(tmp_path, provider: dict, system: str = LONG_SYSTEM) -> list[dict]:
    path = write_suite(
        tmp_path,
        samples=SAMPLES,
        system=system,
        providers={"p": provider},
        targets=[{"name": "a", "provider": "p", "model": "m", "params": {"temperature": 0}}],
    )
    opts = RunOptions(store=str(tmp_path / "store"), tracking_uri=None, executor="local",
                      run_id="cached")  # fmt: skip
    result = run_suite(prepare_suite(path), opts)
    assert result.status == "finished", result.message
    rows = read_results(open_store(str(tmp_path / "store")), "cached").to_pylist()
    assert len(rows) == SAMPLES and all(r["error_kind"] is None for r in rows)
    return rows


def _uncached_cost(row: dict) -> float:
    return (row["input_tokens"] * 1.0 + row["output_tokens"] * 2.0) / 1e6


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
def test_a_shared_long_system_prompt_is_read_from_the_cache_at_the_cache_rate(tmp_path, sim, kind):
    rows = _run(tmp_path, _provider(kind, sim.url))
    read = [r for r in rows if r["cached_input_tokens"] > 0]
    # One request at a time: the first writes the prefix, every later one reads it.
    assert len(read) == SAMPLES - 1
    assert sim.stats()["cached_tokens"] == sum(r["cached_input_tokens"] for r in rows)
    for row in read:
        assert not row["batch"]
        cached = row["cached_input_tokens"]
        assert cached >= 1024 and cached < row["input_tokens"]
        paid = (
            (row["input_tokens"] - cached) * 1.0 + cached * 0.1 + row["output_tokens"] * 2.0
        ) / 1e6
        assert row["cost_usd"] == pytest.approx(paid)
        assert row["usd_saved_cache"] == pytest.approx(_uncached_cost(row) - paid)
        assert row["usd_saved_batch"] == 0.0
        assert row["cost_usd"] < 0.5 * _uncached_cost(row)  # the prefix dominates the input


def test_anthropic_prompt_cache_off_sends_no_mark(tmp_path, sim):
    rows = _run(tmp_path, _provider("anthropic", sim.url, prompt_cache="off"))
    assert sim.stats()["cached_tokens"] == 0
    assert all(r["cached_input_tokens"] == 0 and r["usd_saved_cache"] == 0.0 for r in rows)
    assert all(r["cost_usd"] == pytest.approx(_uncached_cost(r)) for r in rows)


def test_a_short_system_prompt_is_not_marked(tmp_path, sim):
    rows = _run(tmp_path, _provider("anthropic", sim.url), system="Answer briefly.")
    assert sim.stats()["cached_tokens"] == 0
    assert all(r["cached_input_tokens"] == 0 for r in rows)
