"""A `compare:` run (jobs/sequential_compare.py): two simulated targets of true accuracy 0.70
and 0.72 whose correctness correlates at 0.7, on a dataset larger than needed. The run stops
with `b_better` before the dataset is spent, on the same look as a direct computation over
the simulator's own answers; killed mid-comparison and resumed, it reaches the same verdict.

The suite's seed picks the sample order; seed 2 decides after 2,250 pairs, which keeps the
test short on two cores (the number varies with the order: benchmarks/stats_sequential.py has
its distribution, median 2,816 pairs, quartiles 1,792-3,840, over many orders)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalcluster.jobs.driver import RunResult, run_suite
from evalcluster.jobs.options import RunOptions
from evalcluster.jobs.prepare import prepare_suite
from evalcluster.jobs.sequential_compare import sample_order
from evalcluster.scoring.sequential import ConfidenceSequence
from evalcluster.simulator.difficulty import Difficulty, latent_correlation
from evalcluster.simulator.model import reply
from evalcluster.store.fs import open_store
from evalcluster.store.lake import list_shards
from evalcluster.store.manifest import read_manifest, read_summary
from tests.jobs.cli_process import kill_group, start_cli_run, wait_while_running

ITEMS, SHARD, SEED = 20_000, 250, 2
ACCURACY = {"model-a": 0.70, "model-b": 0.72}
LATENT = latent_correlation(0.7, 0.72, 0.70)
PROMPT = "Item {question}: which code word? Answer with the word only."


def write_compare_suite(
    tmp_path: Path,
    items: int = ITEMS,
    accuracy: dict[str, float] = ACCURACY,
    params: dict[str, Any] | None = None,
    **extra: Any,
) -> Path:
    data = tmp_path / "words.jsonl"
    with data.open("w") as f:
        for i in range(items):
            f.write(json.dumps({"id": f"w{i:05d}", "question": str(i), "answer": f"word{i}"}))
            f.write("\n")
    suite = {
        "name": "versus",
        "dataset": {"path": str(data), "id": "id", "input": "question", "target": "answer"},
        "prompt": PROMPT,
        "scorers": [{"type": "exact"}],
        "seed": SEED,
        "shard_size": SHARD,
        "targets": [
            {"name": name, "provider": name, "model": name, "params": params or {"temperature": 0}}
            for name in accuracy
        ],
        "providers": {
            name: {
                "kind": "simulated",
                "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
                "simulator": {"accuracy": accuracy, "correlation": LATENT},
            }
            for name, accuracy in accuracy.items()
        },
        "compare": {"a": "model-a", "b": "model-b", "margin": 0.0, "alpha": 0.05},
        **extra,
    }
    path = tmp_path / "versus.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def run_in_process(suite: Path, work: Path, run_id: str, **options: Any) -> RunResult:
    """`suite` run in this process (the local executor unless `executor` says otherwise), its
    store at ``work/store``, without MLflow unless `tracking_uri` is given."""
    options.setdefault("tracking_uri", None)
    options.setdefault("executor", "local")
    opts = RunOptions(store=str(work / "store"), run_id=run_id, **options)
    return run_suite(prepare_suite(suite), opts)


def direct_sequence() -> ConfidenceSequence:
    """The comparison computed straight from the simulator's answers, shard by shard in the
    seeded order, until it decides: the oracle the run is checked against."""
    shared = Difficulty(LATENT)
    order = sample_order(ITEMS, SEED)
    cs = ConfidenceSequence(alpha=0.05, margin=0.0, tune_samples=ITEMS // 10)
    for start in range(0, ITEMS, SHARD):
        differences = []
        for i in order[start : start + SHARD]:
            prompt = PROMPT.format(question=i)
            right = {
                name: reply(
                    prompt, model=name, accuracy=acc, reference=f"word{i}", difficulty=shared
                ).correct
                for name, acc in ACCURACY.items()
            }
            differences.append(float(right["model-b"]) - float(right["model-a"]))
        cs.update(differences)
        if cs.decided:
            return cs
    return cs


@pytest.fixture(scope="module")
def oracle() -> ConfidenceSequence:
    cs = direct_sequence()
    assert cs.verdict == "b_better"
    return cs


def decided_path(comparison: dict[str, Any]) -> list[dict[str, Any]]:
    path = comparison["path"]
    decided = next(i for i, look in enumerate(path) if look["verdict"] != "undecided")
    return path[: decided + 1]


def assert_same_as_oracle(comparison: dict[str, Any], oracle: ConfidenceSequence) -> None:
    assert comparison["verdict"] == "b_better"
    assert comparison["samples_at_decision"] == oracle.looks[-1].samples
    expected = [look.to_dict() for look in oracle.looks]
    got = decided_path(comparison)
    assert len(got) == len(expected)
    for look, want in zip(got, expected, strict=True):
        assert look["samples"] == want["samples"]
        assert look["verdict"] == want["verdict"]
        for key in ("difference", "lower", "upper"):
            assert look[key] == pytest.approx(want[key], abs=1e-12)


def test_comparison_stops_once_decided_with_b_better(tmp_path, oracle, executor):
    suite = write_compare_suite(tmp_path)
    store = str(tmp_path / "store")
    result = run_in_process(suite, tmp_path, "versus", executor=executor)
    assert result.status == "finished", result.message
    comparison = result.summary["comparison"]
    assert_same_as_oracle(comparison, oracle)
    assert comparison["samples_used"] < ITEMS
    assert comparison["samples_not_run"] == ITEMS - comparison["samples_used"]
    assert comparison["usd_not_spent"] > comparison["cost_usd"] > 0
    assert comparison["pairs_excluded"] == 0
    assert comparison["lower"] > 0
    # the manifest and _summary.json carry it, and fewer shards ran than the dataset has
    opened = open_store(store)
    assert read_summary(opened, "versus")["comparison"]["verdict"] == "b_better"
    manifest = read_manifest(opened, "versus")
    assert manifest.comparison["verdict"] == "b_better"
    shards = manifest.total_shards["model-a"]
    assert shards * SHARD == comparison["samples_used"] < ITEMS
    assert len(manifest.shards["model-a"]) == len(manifest.shards["model-b"]) == shards


def test_equal_targets_end_inconclusive_when_the_samples_run_out(tmp_path):
    same = {"model-a": 0.7, "model-b": 0.7}
    suite = write_compare_suite(tmp_path, items=1_000, accuracy=same)
    result = run_in_process(suite, tmp_path, "tie", max_samples=750)
    assert result.status == "finished", result.message
    comparison = result.summary["comparison"]
    assert comparison["verdict"] == "inconclusive"
    assert comparison["samples_used"] == comparison["samples_cap"] == 750
    assert comparison["samples_not_run"] == 0 and comparison["usd_not_spent"] == 0
    assert comparison["lower"] < 0 < comparison["upper"]


def test_a_comparison_stopped_by_its_budget_is_inconclusive(tmp_path):
    # max_tokens keeps each request's projected cost (reserved before it is sent) small
    params = {"temperature": 0, "max_tokens": 8}
    suite = write_compare_suite(tmp_path, items=5_000, params=params, budget_usd=0.05)
    result = run_in_process(suite, tmp_path, "broke")
    assert result.status == "budget_exhausted", result.message
    comparison = result.summary["comparison"]
    assert comparison["verdict"] == "inconclusive"
    assert 0 < comparison["samples_used"] < 5_000


def test_killed_comparison_resumes_to_the_same_verdict(tmp_path, oracle):
    suite = write_compare_suite(tmp_path)
    store = open_store(str(tmp_path / "store"))
    # MLflow is checked in-process (a command's MLflow worker outlives it): no tracking here.
    first = start_cli_run(suite, tmp_path, "again")
    try:
        wait_while_running(
            first,
            lambda: len(list_shards(store, "again")) >= 4,
            timeout_s=180,
            what="four committed shards",
        )
    finally:
        kill_group(first)
    manifest = read_manifest(store, "again")
    assert manifest.status == "running"  # killed mid-comparison, before the decision
    assert len(list_shards(store, "again")) * SHARD < 2 * oracle.looks[-1].samples

    second = start_cli_run(suite, tmp_path, "again")
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err[-3000:]
    comparison = read_summary(store, "again")["comparison"]
    assert_same_as_oracle(comparison, oracle)
    assert read_manifest(store, "again").comparison["verdict"] == "b_better"
    assert "b_better" in out


def test_mlflow_parent_run_carries_the_verdict(tmp_path, oracle):
    from mlflow import MlflowClient

    suite = write_compare_suite(tmp_path)
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    result = run_in_process(suite, tmp_path, "logged", tracking_uri=tracking)
    assert result.status == "finished", result.message
    assert result.mlflow_error is None
    comparison = result.summary["comparison"]
    parent = MlflowClient(tracking).get_run(result.mlflow_run_id).data
    assert parent.tags["evalcluster.compare.verdict"] == "b_better"
    assert parent.tags["evalcluster.compare.b"] == "model-b"
    assert parent.metrics["compare.samples_used"] == comparison["samples_used"]
    assert parent.metrics["compare.samples_at_decision"] == oracle.looks[-1].samples
    assert parent.metrics["compare.lower"] == pytest.approx(comparison["lower"])
    assert parent.metrics["compare.usd_not_spent"] == pytest.approx(comparison["usd_not_spent"])


def test_leaving_out_a_compared_target_is_refused(tmp_path):
    from evalcluster.errors import SpecError

    suite = write_compare_suite(tmp_path, items=500)
    with pytest.raises(SpecError) as err:
        run_in_process(suite, tmp_path, "half", targets=["model-b"])
    assert err.value.field == "--target"
    assert "model-a" in err.value.message
