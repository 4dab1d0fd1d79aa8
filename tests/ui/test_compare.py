"""Comparing two targets sample by sample, and the review queue, over a real local lake."""

from __future__ import annotations

import numpy as np
import pytest

from evalcluster.scoring.paired import compare_paired
from evalcluster.store.fs import open_store
from evalcluster.ui.compare import compare_targets, interval_path, verdict
from evalcluster.ui.queries import load_run
from evalcluster.ui.review import review_queue
from tests.ui.lake_rows import make_row, write_run


def _make(run_id, target, i):
    # t0 right when i % 3 != 0; t1 also right on every i % 6 == 0 and wrong on i % 10 == 1.
    row = make_row(run_id, target, i)
    if target == "t1":
        right = (i % 3 != 0 or i % 6 == 0) and i % 10 != 1
        row.update(score_exact=float(right), score_numeric=float(right))
    if target == "t0" and i % 4 == 0:
        row.update(score_numeric=1.0)  # numeric and exact disagree on some rows of t0
    return row


@pytest.fixture
def run(tmp_path):
    store = open_store(str(tmp_path))
    write_run(store, "run-c", ["t0", "t1"], 120, shard_size=40, make=_make)
    return load_run(store, "run-c")


def test_compare_gives_the_paired_difference_flips_groups_and_path(run):
    out = compare_targets(run, "t0", run, "t1", "exact", ["level"])
    a = {f"s{i:05d}": float(i % 3 != 0) for i in range(120)}
    b = {f"s{i:05d}": float((i % 3 != 0 or i % 6 == 0) and i % 10 != 1) for i in range(120)}
    expected = compare_paired(a, b)
    assert out["comparison"]["diff"] == pytest.approx(expected.diff)
    assert out["comparison"]["ci_low"] == pytest.approx(expected.ci_low)
    flips = {f["sample_id"]: f["direction"] for f in out["flips"]}
    want = {s: ("b_better" if b[s] > a[s] else "a_better") for s in a if a[s] != b[s]}
    assert flips == want and out["flipped"] == len(want)
    assert set(out["groups"]["level"]) == {"easy", "hard"}
    assert out["groups"]["level"]["easy"]["n"] == 60
    last = out["path"][-1]
    assert last["n"] == 120 and last["diff"] == pytest.approx(expected.diff)
    assert last["ci_low"] == pytest.approx(expected.ci_low)
    widths = [p["ci_high"] - p["ci_low"] for p in out["path"]]
    assert widths[-1] < widths[len(widths) // 4]


def test_interval_path_matches_a_direct_computation():
    diffs = np.random.default_rng(3).normal(0.1, 1, 500)
    path = interval_path(diffs)
    assert 2 <= len(path) <= 80 and path[0]["n"] == 2 and path[-1]["n"] == 500
    for point in path[::10]:
        head = diffs[: point["n"]]
        assert point["diff"] == pytest.approx(head.mean())
        assert point["ci_high"] - point["diff"] == pytest.approx(point["diff"] - point["ci_low"])
    assert interval_path(np.array([1.0])) == []


def test_verdict_reads_the_interval():
    assert verdict(0.01, 0.2) == "b_better" and verdict(-0.3, -0.1) == "a_better"
    assert verdict(-0.1, 0.1) == "undecided" and verdict(None, None) == "undecided"


def test_review_queue_modes(run):
    dis = review_queue(run, "t0", "exact", "disagreement")
    assert dis["other"] == "numeric"
    # exact wrong (i % 3 == 0) while numeric right (i % 4 == 0): i % 12 == 0.
    assert dis["total"] == 10
    assert all(int(r["sample_id"][1:]) % 12 == 0 for r in dis["rows"])
    first = review_queue(run, "t0", "exact", "random", limit=5, seed=1)
    again = review_queue(run, "t0", "exact", "random", limit=5, seed=1)
    assert [r["sample_id"] for r in first["rows"]] == [r["sample_id"] for r in again["rows"]]
    assert first["total"] == 120
    skip = {(r["sample_id"], r["epoch"]) for r in first["rows"]}
    rest = review_queue(run, "t0", "exact", "least_confident", labelled=skip, limit=200)
    assert rest["total"] == 115 and not skip & {(r["sample_id"], 0) for r in rest["rows"]}
    with pytest.raises(KeyError):
        review_queue(run, "t0", "nope", "random")


def test_a_cluster_column_adds_the_clustered_difference(run):
    out = compare_targets(run, "t0", run, "t1", "exact", cluster="level")
    clustered = out["clustered"]
    assert clustered["n"] == 120 and clustered["clusters"] == 2
    assert clustered["diff"] == pytest.approx(out["comparison"]["diff"])
    assert compare_targets(run, "t0", run, "t1", "exact")["clustered"] is None


def test_two_runs_compare_on_their_common_samples(tmp_path, run):
    store = open_store(str(tmp_path / "other"))
    # Run B has samples 60.. only and is right everywhere.
    write_run(store, "run-d", ["t0"], 120, make=lambda r, t, i: make_row(
        r, t, i, score_exact=1.0, score_numeric=1.0, sample_id=f"s{i + 60:05d}"))  # fmt: skip
    other = load_run(store, "run-d")
    out = compare_targets(run, "t0", other, "t0", "exact")
    assert out["a"]["run_id"] == "run-c" and out["b"]["run_id"] == "run-d"
    assert out["comparison"]["n"] == 60
    assert out["comparison"]["dropped_a"] == 60 and out["comparison"]["dropped_b"] == 60
    wrong_in_a = sum(1 for i in range(60, 120) if i % 3 == 0)
    assert out["flipped"] == wrong_in_a and out["verdict"] == "b_better"
