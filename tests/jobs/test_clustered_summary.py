"""A real run of a suite with `cluster:` and two epochs: the statistics in `_summary.json`.

Real local Ray, the simulator over real HTTP (right 70% of the time), a small dataset whose
`passage` column groups its questions. The figures are checked against the run's own rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from evalcluster.errors import SpecError
from evalcluster.jobs.driver import run_suite
from evalcluster.jobs.options import RunOptions
from evalcluster.jobs.prepare import prepare_suite
from evalcluster.jobs.summary import target_results
from evalcluster.simulator import SimulatorConfig, SimulatorThread
from evalcluster.store.fs import open_store
from evalcluster.store.lake import read_results
from evalcluster.suite.loader import load_suite
from tests.conftest import openai_provider
from tests.scoring.summary_oracle import summary_for_rows

SAMPLES, PER_PASSAGE = 48, 4


def _suite(tmp_path: Path, url: str, **extra: object) -> Path:
    data = tmp_path / "passages.jsonl"
    with data.open("w") as f:
        for i in range(SAMPLES):
            a, b = 3 + i, 7 + (i * 5) % 11
            row = {"id": f"q{i:03d}", "question": f"{a} + {b}", "answer": str(a + b)}
            f.write(json.dumps({**row, "passage": f"p{i // PER_PASSAGE}"}) + "\n")
    suite = {
        "name": "clustered",
        "dataset": {"path": str(data), "id": "id", "input": "question", "target": "answer"},
        "prompt": "What is {question}? Answer with the number only.",
        "scorers": [{"type": "exact"}],
        "cluster": "passage",
        "epochs": 2,
        "shard_size": 16,
        "providers": {"p": openai_provider(url)},
        "targets": [
            {"name": "a", "provider": "p", "model": "m1", "params": {"temperature": 0.7}},
            {"name": "b", "provider": "p", "model": "m2", "params": {"temperature": 0.7}},
        ],
        **extra,
    }
    path = tmp_path / "clustered.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def test_an_unknown_cluster_column_is_refused_naming_it(tmp_path: Path) -> None:
    path = _suite(tmp_path, "http://127.0.0.1:9", cluster="chapter")
    with pytest.raises(SpecError) as info:
        load_suite(path)
    assert info.value.field == "cluster"
    assert "'chapter'" in str(info.value)


def test_a_cluster_column_does_not_change_the_versions_of_suites_without_one(
    tmp_path: Path,
) -> None:
    with_cluster = load_suite(_suite(tmp_path, "http://127.0.0.1:9"))
    without = load_suite(_suite(tmp_path, "http://127.0.0.1:9", cluster=None))
    assert with_cluster.version != without.version
    assert "cluster" not in without.spec.model_dump(exclude_none=True)


def test_a_run_with_cluster_reports_clustered_epoch_and_paired_figures(
    local_ray, tmp_path: Path
) -> None:
    with SimulatorThread(SimulatorConfig(accuracy=0.7)) as sim:
        path = _suite(tmp_path, sim.url)
        options = RunOptions(store=str(tmp_path / "store"), tracking_uri=None, run_id="c1")
        assert run_suite(prepare_suite(path), options).status == "finished"
    store_dir = tmp_path / "store" / "runs" / "run_id=c1"
    summary = json.loads((store_dir / "_summary.json").read_text())
    rows = read_results(open_store(str(tmp_path / "store")), "c1").to_pylist()
    assert summary["cluster"] == "passage"
    # carried in each row although dataset.metadata does not list it
    assert all(json.loads(r["metadata"])["passage"] for r in rows)

    means: dict[str, dict[str, float]] = {}
    for target in ("a", "b"):
        per_sample: dict[str, list[float]] = {}
        for r in rows:
            if r["target"] == target:
                per_sample.setdefault(r["sample_id"], []).append(r["score_exact"])
        ids = sorted(per_sample)
        means[target] = {k: float(np.mean(per_sample[k])) for k in ids}
        x = np.array([means[target][k] for k in ids]).reshape(-1, PER_PASSAGE)
        scorer = summary["targets"][target]["scorers"]["exact"]
        clustered = scorer["clustered"]
        assert clustered["clusters"] == SAMPLES // PER_PASSAGE
        assert clustered["df"] == SAMPLES // PER_PASSAGE - 1
        # equal clusters: the CR1 stderr is the standard error of the passages' means
        assert clustered["stderr"] == pytest.approx(stats.sem(x.mean(axis=1)), rel=1e-9)
        assert clustered["stderr_naive"] == pytest.approx(scorer["stderr"], rel=1e-9)
        epochs = np.array([per_sample[k] for k in ids])
        msw = ((epochs - epochs.mean(axis=1, keepdims=True)) ** 2).sum() / SAMPLES
        assert scorer["epoch_split"]["var_within"] == pytest.approx(msw, rel=1e-9, abs=1e-12)
        assert scorer["epoch_split"]["mean_epochs"] == 2

    [pair] = summary["paired"]
    assert (pair["a"], pair["b"]) == ("a", "b")
    diff = pair["scorers"]["exact"]
    d = np.array([means["b"][k] - means["a"][k] for k in sorted(means["a"])])
    assert diff["n"] == SAMPLES
    assert diff["diff"] == pytest.approx(d.mean(), abs=1e-12)
    assert diff["stderr"] == pytest.approx(stats.sem(d.reshape(-1, PER_PASSAGE).mean(axis=1)))
    assert diff["clusters"] == SAMPLES // PER_PASSAGE

    assert diff["stderr"] > 0 and summary["targets"]["a"]["scorers"]["exact"]["stderr"] > 0

    # The rows-based summary (scoring/summary.py) agrees with the one built shard by shard.
    flat = [{**r, **json.loads(r["metadata"])} for r in rows]
    from_rows = summary_for_rows(flat, scorers=["exact"], cluster="passage")
    for target in ("a", "b"):
        mine = from_rows["targets"][target]["scorers"]["exact"]
        theirs = summary["targets"][target]["scorers"]["exact"]
        assert mine["clustered"] == pytest.approx(theirs["clustered"])
        assert mine["epoch_split"] == pytest.approx(theirs["epoch_split"])
    assert from_rows["paired"][0]["scorers"]["exact"] == pytest.approx(diff)

    suite = load_suite(path)
    [a_result, _] = target_results(suite, summary)
    assert a_result.metrics["exact/stderr_clustered"] == pytest.approx(
        summary["targets"]["a"]["scorers"]["exact"]["clustered"]["stderr"]
    )
    assert "exact/var_within" in a_result.metrics
