"""The comparison state machine (jobs/sequential_compare.py) over shard files in a real store:
the seeded order, the contiguous prefix whatever the commit order, pairing, errors, epochs,
replay from a manifest and the money not spent. No run: the shards are written directly."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from evalcluster.jobs.sequential_compare import (
    ComparisonError,
    SequentialComparison,
    sample_order,
)
from evalcluster.store.fs import open_store
from evalcluster.store.lake import commit_shard, shard_key
from evalcluster.store.manifest import ShardRecord
from evalcluster.suite import load_suite
from tests.store.conftest import result_row

ITEMS, SHARD, RUN = 40, 10, "cmp"
SUITE = """
name: versus
dataset: {path: data.jsonl, id: id, input: question, target: answer}
prompt: "Q {question}"
scorers: [{type: exact}, {type: numeric}]
shard_size: 10
seed: 3
targets:
  - {name: old, provider: p, model: m1}
  - {name: new, provider: p, model: m2}
providers:
  p: {kind: simulated}
compare: COMPARE
"""


def suite_at(tmp_path: Path, compare: str = "{a: old, b: new, alpha: 0.05}"):
    rows = [{"id": f"s{i}", "question": str(i), "answer": str(i)} for i in range(ITEMS)]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "suite.yaml").write_text(SUITE.replace("COMPARE", compare))
    return load_suite(tmp_path / "suite.yaml")


def score(target: str, sample_id: str) -> float:
    """`new` right on every sample, `old` on one in three: b is clearly better."""
    return 1.0 if target == "new" or int(sample_id[1:]) % 3 == 0 else 0.0


def commit(store, comparison, target: str, index: int, **row_overrides) -> None:
    samples = list(comparison.batches())[index].samples
    rows = [
        result_row(
            RUN,
            target,
            n,
            **{
                "sample_id": s.sample_id,
                "score_exact": score(target, s.sample_id),
                "cost_usd": 0.001,
                **row_overrides.get(s.sample_id, {}),
            },
        )
        for n, s in enumerate(samples)
    ]
    commit_shard(store, RUN, target, index, rows, ["exact", "numeric"])


@pytest.fixture
def store(tmp_path):
    return open_store(str(tmp_path / "store"))


def test_sample_order_is_a_seeded_permutation(tmp_path, store):
    assert np.array_equal(sample_order(100, 3), sample_order(100, 3))
    assert not np.array_equal(sample_order(100, 3), sample_order(100, 4))
    assert sorted(sample_order(100, 3)) == list(range(100))
    comparison = SequentialComparison(suite_at(tmp_path), store, RUN)
    ids = [s.sample_id for b in comparison.batches() for s in b.samples]
    assert sorted(ids) == sorted(f"s{i}" for i in range(ITEMS))
    assert ids == [f"s{i}" for i in sample_order(ITEMS, 3)]
    assert [len(b.samples) for b in comparison.batches()] == [SHARD] * 4


def test_the_cap_is_the_smaller_of_max_samples_and_the_run_option(tmp_path, store):
    suite = suite_at(tmp_path, "{a: old, b: new, max_samples: 25}")
    comparison = SequentialComparison(suite, store, RUN, max_samples=30)
    assert comparison.cap == 25
    assert [len(b.samples) for b in comparison.batches()] == [10, 10, 5]
    assert SequentialComparison(suite, store, RUN, max_samples=12).cap == 12


def test_the_path_is_the_same_whatever_order_shards_commit_in(tmp_path, store):
    suite = suite_at(tmp_path, "{a: old, b: new, alpha: 0.001}")
    in_order = SequentialComparison(suite, store, RUN)
    for index in range(4):
        for target in ("old", "new"):
            commit(store, in_order, target, index)
    for index in range(4):
        in_order.on_commit("old", index)
        in_order.on_commit("new", index)
    shuffled = SequentialComparison(suite, store, RUN)
    order = [("new", 3), ("old", 1), ("new", 1), ("old", 3), ("old", 2)]
    for target, index in order:
        shuffled.on_commit(target, index)
    assert shuffled.sequence.looks == []  # shard 0 is missing: nothing is looked at yet
    for target, index in [("new", 0), ("old", 0), ("new", 2)]:
        shuffled.on_commit(target, index)
    assert shuffled.result("finished") == in_order.result("finished")
    assert [look["samples"] for look in in_order.result("finished")["path"]] == [10, 20, 30, 40]


def test_restore_replays_the_shards_a_manifest_records(tmp_path, store):
    suite = suite_at(tmp_path)
    live = SequentialComparison(suite, store, RUN)
    for index in range(3):
        for target in ("old", "new"):
            commit(store, live, target, index)
            live.on_commit(target, index)
    record = {
        i: ShardRecord(rows=SHARD, committed_at=datetime.now(UTC), key=shard_key(RUN, "x", i))
        for i in range(3)
    }
    resumed = SequentialComparison(suite, store, RUN)
    resumed.restore({"old": record, "new": record})
    assert resumed.result("running") == live.result("running")
    assert resumed.sequence.to_dict() == live.sequence.to_dict()


def test_a_decided_comparison_stops_dispatching_but_finishes_what_was_committed(tmp_path, store):
    comparison = SequentialComparison(suite_at(tmp_path), store, RUN)
    assert not comparison.should_stop(0)
    for target in ("old", "new"):
        commit(store, comparison, target, 0)
        comparison.on_commit(target, 0)
    assert comparison.decided and comparison.sequence.verdict == "b_better"
    assert comparison.should_stop(1)
    commit(store, comparison, "old", 2)  # committed out of order before a kill
    comparison.on_commit("old", 2)
    assert not comparison.should_stop(1) and not comparison.should_stop(2)
    assert comparison.should_stop(3)


def test_errors_and_missing_scores_are_left_out_and_counted(tmp_path, store):
    comparison = SequentialComparison(suite_at(tmp_path), store, RUN)
    ids = [s.sample_id for s in list(comparison.batches())[0].samples]
    failed = {ids[0]: {"error_kind": "timeout", "error": "t", "score_exact": None}}
    unscored = {ids[1]: {"score_exact": None}}
    commit(store, comparison, "old", 0, **failed)
    commit(store, comparison, "new", 0, **unscored)
    comparison.on_commit("old", 0)
    comparison.on_commit("new", 0)
    result = comparison.result("running")
    assert result["pairs"] == SHARD - 2
    assert result["pairs_excluded"] == 2
    kept = ids[2:]
    expected = np.mean([score("new", s) - score("old", s) for s in kept])
    assert result["difference"] == pytest.approx(expected)


def test_epochs_of_a_sample_are_averaged_into_one_observation(tmp_path, store):
    comparison = SequentialComparison(suite_at(tmp_path), store, RUN)
    samples = list(comparison.batches())[0].samples
    for target in ("old", "new"):
        rows = []
        for n, s in enumerate(samples):
            for epoch in (0, 1):
                right = 1.0 if target == "new" or epoch == 0 else 0.0
                rows.append(
                    result_row(
                        RUN,
                        target,
                        2 * n + epoch,
                        sample_id=s.sample_id,
                        epoch=epoch,
                        score_exact=right,
                    )
                )
        commit_shard(store, RUN, target, 0, rows, ["exact", "numeric"])
        comparison.on_commit(target, 0)
    result = comparison.result("running")
    assert result["pairs"] == SHARD  # one observation per sample, not per epoch
    assert result["difference"] == pytest.approx(0.5)


def test_scores_outside_zero_one_are_refused_naming_the_scorer(tmp_path, store):
    comparison = SequentialComparison(suite_at(tmp_path), store, RUN)
    ids = [s.sample_id for s in list(comparison.batches())[0].samples]
    commit(store, comparison, "old", 0, **{ids[3]: {"score_exact": 3.5}})
    commit(store, comparison, "new", 0)
    comparison.on_commit("old", 0)
    with pytest.raises(ComparisonError, match=r"compare.scorer: 'exact' gave 3.5"):
        comparison.on_commit("new", 0)


def test_money_not_spent_is_cost_per_sample_times_samples_not_run(tmp_path, store):
    comparison = SequentialComparison(suite_at(tmp_path), store, RUN)
    for target in ("old", "new"):
        commit(store, comparison, target, 0)
        comparison.on_commit(target, 0)
    result = comparison.result("finished")
    assert result["verdict"] == "b_better"
    assert result["samples_used"] == SHARD and result["samples_not_run"] == ITEMS - SHARD
    assert result["cost_usd"] == pytest.approx(2 * SHARD * 0.001)
    assert result["usd_not_spent"] == pytest.approx(0.002 * (ITEMS - SHARD))


def test_verdict_of_an_undecided_run_depends_on_how_it_ended(tmp_path, store):
    comparison = SequentialComparison(suite_at(tmp_path), store, RUN)
    assert comparison.verdict("finished") == "inconclusive"
    assert comparison.verdict("budget_exhausted") == "inconclusive"
    assert comparison.verdict("killed") == "undecided"
