"""`evalcluster plan`: sample sizes, detectable differences, cost and time, from assumptions or
from an earlier run's rows in a real store."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from evalcluster.cli import main
from evalcluster.store.fs import open_store
from evalcluster.store.lake import commit_shard
from tests.result_rows import result_row

PRICE_IN, PRICE_OUT, RPM = 0.15, 0.60, 600


def _suite(tmp_path: Path, samples: int = 3000, **extra: object) -> Path:
    data = tmp_path / "plan.jsonl"
    with data.open("w") as f:
        for i in range(samples):
            row = {"id": f"q{i:05d}", "question": f"{i} + 1", "answer": str(i + 1)}
            f.write(json.dumps({**row, "passage": f"p{i // 5}"}) + "\n")
    provider = {
        "kind": "openai",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key_env": "EVALCLUSTER_TEST_KEY",
        "rpm": RPM,
        "pricing": {"input_per_mtok": PRICE_IN, "output_per_mtok": PRICE_OUT},
    }
    suite = {
        "name": "plan-suite",
        "dataset": {"path": str(data), "id": "id", "input": "question", "target": "answer"},
        "prompt": "What is {question}? Answer with the number only.",
        "scorers": [{"type": "exact"}],
        "shard_size": 100,
        "providers": {"p": provider},
        "targets": [
            {"name": "a", "provider": "p", "model": "m1", "params": {"max_tokens": 16}},
            {"name": "b", "provider": "p", "model": "m2", "params": {"max_tokens": 16}},
        ],
        **extra,
    }
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def _plan(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["plan", *argv, "--format", "json", "--no-sequential"]) == 0
    return json.loads(capsys.readouterr().out)


def test_assumed_accuracies_give_the_paired_size_and_its_cost_and_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _suite(tmp_path)
    plan = _plan(capsys, str(path), "--p-a", "0.70", "--p-b", "0.72", "--correlation", "0.7")
    sd = math.sqrt(0.21 + 0.2016 - 2 * 0.7 * math.sqrt(0.21 * 0.2016))
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert plan["samples_needed"] == pytest.approx((z * sd / 0.02) ** 2, abs=5)
    assert 8_050 <= plan["samples_needed_unpaired_iid"] <= 8_110
    assert plan["delta"] == pytest.approx(0.02)
    fixed = plan["fixed"]
    n = plan["samples_needed"]
    assert fixed["samples"] == n and fixed["calls"] == 2 * n
    prompt_tokens = np.mean(
        [math.ceil(len(f"What is {i} + 1? Answer with the number only.") / 4) for i in range(200)]
    )
    per_call = (prompt_tokens * PRICE_IN + 16 * PRICE_OUT) / 1e6
    assert fixed["cost_usd"] == pytest.approx(2 * n * per_call, rel=1e-9)
    assert fixed["minutes"] == pytest.approx(2 * n / RPM)
    assert plan["dataset_samples"] == 3000
    assert plan["sequential"] is None


def test_n_gives_the_detectable_difference_and_clusters_raise_the_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _suite(tmp_path)
    common = ["--p-a", "0.5", "--p-b", "0.55", "--correlation", "0.5"]
    iid = _plan(capsys, str(path), *common, "--n", "1000")
    assert 0.03 < iid["detectable_difference"] < 0.06
    assert iid["power_at_n"] == pytest.approx(
        stats.norm.cdf(0.05 / (iid["inputs"]["sd_diff"] / math.sqrt(1000)) - 1.9623), abs=0.01
    )
    clustered = _plan(capsys, str(path), *common, "--icc", "0.2", "--cluster-size", "6")
    plain = _plan(capsys, str(path), *common)
    assert clustered["inputs"]["design_effect"] == pytest.approx(2.0)
    assert clustered["samples_needed"] == pytest.approx(2 * plain["samples_needed"], rel=0.01)


def test_the_table_format_and_the_sequential_simulation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _suite(tmp_path, compare={"a": "a", "b": "b", "max_samples": 3000})
    args = ["plan", str(path), "--p-a", "0.6", "--p-b", "0.7", "--correlation", "0.5"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "samples paired" in text and "fixed design" in text and "sequential" in text
    assert main([*args, "--format", "json"]) == 0
    seq = json.loads(capsys.readouterr().out)["sequential"]
    assert seq["max_samples"] == 3000
    assert 0 < seq["mean_samples"] <= 3000 and seq["decided_correctly"] > 0.5


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--p-a", "0.7", "--p-b", "0.72", "--alpha", "2"], "alpha"),
        (["--p-a", "1.5", "--p-b", "0.72"], "p_a"),
        (["--p-a", "0.7"], "plan"),
        (["--p-a", "0.7", "--p-b", "0.72", "--a", "nobody"], "a"),
        (["--p-a", "0.7", "--p-b", "0.72", "--scorer", "nope"], "scorer"),
        (["--from-run", "missing"], "from_run"),
    ],
)
def test_bad_options_exit_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], field: str
) -> None:
    path = _suite(tmp_path, samples=50)
    store = str(tmp_path / "store")
    assert main(["plan", str(path), "--store", store, *argv]) == 2
    err = capsys.readouterr().err
    assert f"{field}:" in err or (field == "plan" and "p_a and p_b" in err)


def _rows(run_id: str, target: str, scores: np.ndarray, tokens: tuple[int, int]) -> list[dict]:
    now = dt.datetime.now(dt.UTC)
    return [
        result_row(
            run_id,
            target,
            i,
            scores={"exact": float(s)},
            suite="plan-suite",
            suite_version="v",
            provider="p",
            served_by="p",
            model=target,
            sample_id=f"q{i:05d}",
            prompt="x",
            reference="y",
            output="y",
            input_tokens=tokens[0],
            output_tokens=tokens[1],
            cost_usd=0.0,
            latency_ms=100.0,
            request_hash=f"h{i}",
            finished_at=now,
            metadata=json.dumps({"passage": f"p{i // 5}"}),
        )
        for i, s in enumerate(scores)
    ]


def test_from_run_estimates_the_inputs_from_the_lake(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(11)
    passage = np.repeat(rng.normal(size=80), 5)
    a = (passage + rng.normal(size=400) < 0.5).astype(float)
    b = (passage + rng.normal(size=400) < 0.8).astype(float)
    store = open_store(str(tmp_path / "store"))
    for target, scores, tokens in (("a", a, (30, 4)), ("b", b, (30, 6))):
        commit_shard(store, "pilot", target, 0, _rows("pilot", target, scores, tokens), ["exact"])
    path = _suite(tmp_path, cluster="passage")
    plan = _plan(capsys, str(path), "--from-run", "pilot", "--store", str(tmp_path / "store"))
    assert plan["source"] == "run pilot"
    assert plan["inputs"]["p_a"] == pytest.approx(a.mean())
    assert plan["inputs"]["p_b"] == pytest.approx(b.mean())
    assert plan["inputs"]["correlation"] == pytest.approx(stats.pearsonr(a, b).statistic)
    assert plan["delta"] == pytest.approx(b.mean() - a.mean())
    assert plan["pilot"]["clusters"] == 80 and plan["inputs"]["cluster_size"] == 5
    d = (b - a).reshape(80, 5)
    msb, msw = 5 * d.mean(axis=1).var(ddof=1), d.var(axis=1, ddof=1).mean()
    icc = max(0.0, (msb - msw) / (msb + 4 * msw))
    assert plan["inputs"]["icc"] == pytest.approx(icc)
    by_target = plan["fixed"]["by_target"]
    assert by_target["b"]["output_tokens_per_call"] == 6 and by_target["b"]["basis"] == "run"
    n = plan["samples_needed"]
    assert plan["fixed"]["cost_usd"] == pytest.approx(n * (30 * 0.15 * 2 + 10 * 0.6) / 1e6)
