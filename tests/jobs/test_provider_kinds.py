"""Every provider kind through whole runs: one suite, one simulator, exact tokens and costs.

Each target's requests cross real HTTP in its kind's wire format, so what the lake records
is what the simulator served: `count_tokens` of the system prompt plus the prompt in, and of
`answer(...)` out, priced by the suite's overrides, or by OpenRouter's own `usage.cost`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest

from evalcluster.errors import SpecError
from evalcluster.jobs.driver import RunResult, run_suite
from evalcluster.jobs.options import RunOptions
from evalcluster.jobs.prepare import prepare_suite
from evalcluster.providers import build_adapter
from evalcluster.simulator import SimulatorConfig, SimulatorThread, answer, count_tokens
from evalcluster.store.fs import open_store
from evalcluster.store.lake import read_results
from evalcluster.suite.loader import load_providers_file
from tests.conftest import REPO, write_suite

SAMPLES = 10
SYSTEM = "You are a careful calculator. Reply with the number only."
PROMPT = "What is {question}? Answer with the number only."
KEY_ENV = "EVALCLUSTER_TEST_KEY"  # forwarded to Ray's workers by the `local_ray` fixture
TEST_KEY = "sk-test-not-a-real-key-0123456789"  # the value `local_ray` gives them
# The simulator's own prices, which it reports to OpenRouter clients as `usage.cost`.
SIM_PRICE_IN, SIM_PRICE_OUT = 1.0, 2.0


def price(input_per_mtok: float, output_per_mtok: float) -> dict[str, float]:
    return {"input_per_mtok": input_per_mtok, "output_per_mtok": output_per_mtok}


def providers_for(url: str) -> dict[str, dict[str, Any]]:
    """One provider of each kind, all at the simulator at `url`, each priced differently."""
    return {
        "p-openai": {
            "kind": "openai",
            "base_url": f"{url}/v1",
            "api_key_env": KEY_ENV,
            "pricing": price(0.15, 0.60),
        },
        "p-local": {
            "kind": "local",
            "base_url": f"{url}/v1",
            "api_key_env": KEY_ENV,
            "pricing": price(0.05, 0.10),
        },
        # The override is deliberately absurd: OpenRouter's reported usage.cost must win.
        "p-openrouter": {
            "kind": "openrouter",
            "base_url": f"{url}/v1",
            "api_key_env": KEY_ENV,
            "app_title": "evalcluster-tests",
            "pricing": price(500.0, 500.0),
        },
        "p-anthropic": {
            "kind": "anthropic",
            "base_url": url,
            "api_key_env": KEY_ENV,
            "pricing": price(0.80, 4.00),
        },
        "p-gemini": {
            "kind": "gemini",
            "base_url": url,
            "api_key_env": KEY_ENV,
            "pricing": price(0.30, 2.50),
        },
        "p-custom": {
            "kind": "custom",
            "api_key_env": KEY_ENV,
            "custom": {
                "url": f"{url}/v1/chat/completions",
                "headers": {"Authorization": "Bearer {api_key}"},
                "body_template": {
                    "model": "{model}",
                    "messages": "{messages}",
                    "max_tokens": "{max_tokens}",
                    "temperature": "{temperature}",
                },
                "text_path": "choices.0.message.content",
                "input_tokens_path": "usage.prompt_tokens",
                "output_tokens_path": "usage.completion_tokens",
                "finish_reason_path": "choices.0.finish_reason",
            },
            "pricing": price(2.0, 8.0),
        },
        # Given a base_url, `simulated` uses that simulator instead of starting its own.
        "p-simulated": {
            "kind": "simulated",
            "base_url": url,
            "simulator": {"format": "anthropic"},
            "pricing": price(3.0, 15.0),
        },
    }


# target name -> (provider, model, wire format the simulator sees)
TARGETS = {
    "t-openai": ("p-openai", "sim-1", "openai"),
    "t-local": ("p-local", "sim-1-mini", "openai"),
    "t-openrouter": ("p-openrouter", "vendor/sim-1", "openai"),
    "t-anthropic": ("p-anthropic", "sim-claude", "anthropic"),
    "t-gemini": ("p-gemini", "sim-gemini", "gemini"),
    "t-custom": ("p-custom", "sim-custom", "openai"),
    "t-simulated": ("p-simulated", "sim-1", "anthropic"),
}


@dataclass
class KindsRun:
    result: RunResult
    rows: list[dict[str, Any]]
    stats: dict[str, Any]  # the simulator's, after the run
    providers: dict[str, dict[str, Any]]
    questions: dict[str, str]  # sample id -> question


@pytest.fixture(scope="module")
def kinds_run(local_ray, tmp_path_factory) -> KindsRun:
    """The one suite with a target per kind, run once."""
    tmp_path = tmp_path_factory.mktemp("kinds")
    with (
        pytest.MonkeyPatch.context() as env,
        SimulatorThread(
            SimulatorConfig(
                accuracy=1.0,
                seed=0,
                price_input_per_mtok=SIM_PRICE_IN,
                price_output_per_mtok=SIM_PRICE_OUT,
            )
        ) as sim,
    ):
        env.setenv(KEY_ENV, TEST_KEY)  # the autouse key fixture is per test, this is per module
        providers = providers_for(sim.url)
        targets = [
            {
                "name": name,
                "provider": provider,
                "model": model,
                "params": {"temperature": 0, "max_tokens": 16},
            }
            for name, (provider, model, _) in TARGETS.items()
        ]
        path = write_suite(
            tmp_path,
            samples=SAMPLES,
            providers=providers,
            targets=targets,
            name="kinds",
            system=SYSTEM,
            prompt=PROMPT,
        )
        store = str(tmp_path / "store")
        result = run_suite(
            prepare_suite(path), RunOptions(store=store, tracking_uri=None, run_id="kinds")
        )
        stats = sim.stats()
    rows = read_results(open_store(store), "kinds").to_pylist()
    lines = (tmp_path / "kinds.jsonl").read_text().splitlines()
    questions = {s["id"]: s["question"] for s in map(json.loads, lines)}
    return KindsRun(result, rows, stats, providers, questions)


def expected_tokens(run: KindsRun, row: dict[str, Any]) -> tuple[int, int]:
    """What the simulator counts for this row's sample: system + prompt in, its answer out."""
    prompt = PROMPT.format(question=run.questions[row["sample_id"]])
    model = TARGETS[row["target"]][1]
    return count_tokens(SYSTEM) + count_tokens(prompt), count_tokens(answer(prompt, model=model))


def test_every_kind_answers_every_sample_correctly(kinds_run):
    result, rows = kinds_run.result, kinds_run.rows
    assert result.status == "finished", result.message
    assert len(rows) == SAMPLES * len(TARGETS)
    for name, (provider, model, _) in TARGETS.items():
        mine = [r for r in rows if r["target"] == name]
        assert len(mine) == SAMPLES, name
        assert {r["provider"] for r in mine} == {provider}
        assert {r["model"] for r in mine} == {model}
        assert all(r["error_kind"] is None and r["attempts"] == 1 for r in mine), name
        assert {r["score_numeric"] for r in mine} == {1.0}, name
        assert all(r["output"] == answer(r["prompt"], model=model) for r in mine), name


def test_rows_carry_the_exact_token_counts_the_simulator_served(kinds_run):
    rows, stats = kinds_run.rows, kinds_run.stats
    for row in rows:
        assert (row["input_tokens"], row["output_tokens"]) == expected_tokens(kinds_run, row)
    assert sum(r["input_tokens"] for r in rows) == stats["tokens_in"]
    assert sum(r["output_tokens"] for r in rows) == stats["tokens_out"]


def test_each_wire_format_got_exactly_its_targets_requests(kinds_run):
    stats = kinds_run.stats
    per_format = {f: 0 for f in ("openai", "anthropic", "gemini")}
    for _, _, wire in TARGETS.values():
        per_format[wire] += SAMPLES
    assert stats["by_format"] == per_format
    assert stats["requests_total"] == stats["by_outcome"]["ok"] == SAMPLES * len(TARGETS)


def test_costs_follow_the_suite_pricing_and_openrouter_reported_cost_wins(kinds_run):
    rows, providers = kinds_run.rows, kinds_run.providers
    for row in rows:
        provider = TARGETS[row["target"]][0]
        tokens_in, tokens_out = row["input_tokens"], row["output_tokens"]
        if provider == "p-openrouter":
            expected = round((tokens_in * SIM_PRICE_IN + tokens_out * SIM_PRICE_OUT) / 1e6, 12)
        else:
            rates = providers[provider]["pricing"]
            expected = (
                tokens_in * rates["input_per_mtok"] + tokens_out * rates["output_per_mtok"]
            ) / 1e6
        assert row["cost_usd"] == pytest.approx(expected, rel=1e-9, abs=1e-15), row["target"]
        assert row["cost_usd"] > 0


def test_summary_totals_match_the_rows_per_target(kinds_run):
    result, rows = kinds_run.result, kinds_run.rows
    for name in TARGETS:
        mine = [r for r in rows if r["target"] == name]
        summary = result.summary["targets"][name]
        assert summary["errors"] == 0
        assert summary["input_tokens"] == sum(r["input_tokens"] for r in mine)
        assert summary["output_tokens"] == sum(r["output_tokens"] for r in mine)
        assert summary["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in mine), rel=1e-6)


# --- the providers example files -------------------------------------------------------------

EXAMPLE_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "OPENROUTER_API_KEY")
REAL_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "openrouter": "https://openrouter.ai/api/v1",
}


@pytest.fixture
def dummy_keys(monkeypatch) -> dict[str, str]:
    keys = {name: f"dummy-{name.lower()}" for name in EXAMPLE_KEYS}
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    return keys


def test_example_providers_file_names_the_real_services_and_their_key_variables():
    loaded = load_providers_file(REPO / "examples" / "providers.yaml", "providers.yaml")
    for kind, base_url in REAL_BASE_URLS.items():
        assert loaded[kind].kind == kind
        assert loaded[kind].base_url == base_url
        assert loaded[kind].api_key_env == f"{kind.upper()}_API_KEY"
        assert loaded[kind].rpm and loaded[kind].tpm, kind  # paid tiers are rate limited
    local = loaded["local"]
    assert local.kind == "local" and local.base_url.startswith("http://localhost:")
    assert local.api_key_env is None  # a local server needs no key
    for config in loaded.values():
        assert config.max_concurrency <= 64 and config.timeout_s >= 60


def test_compare_providers_suite_validates_with_keys_from_the_environment(dummy_keys):
    suite = prepare_suite(REPO / "examples" / "compare-providers.yaml")
    kinds = {suite.spec.providers[t.provider].kind for t in suite.spec.targets}
    assert kinds == {"openai", "anthropic", "gemini", "openrouter", "local"}
    assert suite.dataset_sha256 and len(suite.columns) >= 3
    adapters = [
        build_adapter(t.provider, suite.spec.providers[t.provider]) for t in suite.spec.targets
    ]
    for adapter in adapters:
        assert "dummy" not in repr(adapter)
    sent = {a.kind: (a.api_key or "") for a in adapters}
    assert sent["openai"] == dummy_keys["OPENAI_API_KEY"]
    assert sent["gemini"] == dummy_keys["GEMINI_API_KEY"]
    assert sent["local"] == ""


def test_compare_providers_suite_without_a_key_names_the_missing_variable(dummy_keys, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(SpecError, match="environment variable ANTHROPIC_API_KEY is not set"):
        prepare_suite(REPO / "examples" / "compare-providers.yaml")


def test_compare_providers_dry_run_exits_0_and_shows_every_target(dummy_keys, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "evalcluster.cli",
            "run",
            str(REPO / "examples" / "compare-providers.yaml"),
            "--dry-run",
            "--store",
            str(tmp_path / "store"),
            "--tracking-uri",
            f"sqlite:///{tmp_path}/m.db",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for target in ("gpt-4o-mini", "claude-haiku", "gemini-flash", "llama-3.3-70b", "local-llama"):
        assert target in done.stdout
    assert "300" in done.stdout  # every sample planned
    assert not (tmp_path / "store").exists() and not (tmp_path / "m.db").exists()
