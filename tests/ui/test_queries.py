"""Filtering, paging, one sample and the summary of a run, read from a real local lake."""

from __future__ import annotations

import pyarrow.dataset as ds
import pytest

from evalcluster.store.fs import open_store
from evalcluster.store.lake import commit_shard, read_results, read_runs
from evalcluster.ui.labels import LabelRequest, append_label, new_label
from evalcluster.ui.queries import (
    SampleFilter,
    load_run,
    row_scores,
    run_summary,
    sample_detail,
    sample_page,
)
from tests.ui.lake_rows import SCORERS, make_row, write_run

RUN = "run-q1"


@pytest.fixture
def store(tmp_path):
    store = open_store(str(tmp_path / "store"))

    def make(run_id, target, i):
        if target == "t1" and i == 7:
            return make_row(
                run_id,
                target,
                i,
                output=None,
                error_kind="rate_limited",
                error="HTTP 429",
                score_exact=None,
                score_numeric=None,
            )
        if i == 11:
            return make_row(run_id, target, i, output="the Needle is here", cache_hit=True)
        return make_row(run_id, target, i)

    write_run(store, RUN, ["t0", "t1"], 120, shard_size=25, make=make)
    return store


def test_pages_follow_the_lake_order_and_count_every_match(store):
    run = load_run(store, RUN)
    page = sample_page(run, SampleFilter(), offset=30, limit=10)
    assert page.total == 240
    expected = read_results(store, RUN, offset=30, limit=10).to_pylist()
    assert [r["sample_id"] for r in page.rows] == [r["sample_id"] for r in expected]
    assert [r["target"] for r in page.rows] == [r["target"] for r in expected]
    assert page.scorers == list(SCORERS) and page.targets == ["t0", "t1"]
    last = sample_page(run, SampleFilter(target="t1"), offset=115, limit=10)
    assert last.total == 120 and len(last.rows) == 5


def test_right_wrong_and_error_rows_are_told_apart(store):
    run = load_run(store, RUN)
    right = sample_page(run, SampleFilter(target="t1", outcome="right"), 0, 1000)
    wrong = sample_page(run, SampleFilter(target="t1", outcome="wrong"), 0, 1000)
    errors = sample_page(run, SampleFilter(target="t1", outcome="error"), 0, 1000)
    assert errors.total == 1 and errors.rows[0]["error_kind"] == "rate_limited"
    assert errors.rows[0]["sample_id"] == "s00007"
    # 40 multiples of 3 below 120 are wrong; the error row (7) is in neither.
    assert wrong.total == 40 and right.total == 120 - 40 - 1
    assert all(r["scores"]["exact"] == 0.0 for r in wrong.rows)
    kinds = sample_page(run, SampleFilter(error_kind="rate_limited"), 0, 10)
    assert kinds.total == 1
    assert sample_page(run, SampleFilter(error_kind="any"), 0, 10).total == 1


def test_score_range_group_and_text_search_filter(store):
    run = load_run(store, RUN)
    low = sample_page(run, SampleFilter(target="t0", scorer="exact", max_score=0.5), 0, 500)
    assert low.total == 40
    hard = sample_page(run, SampleFilter(target="t0", group=("level", "hard")), 0, 500)
    assert hard.total == 60
    assert all(int(r["sample_id"][1:]) % 2 == 1 for r in hard.rows)
    found = sample_page(run, SampleFilter(text="needle"), 0, 10)
    assert found.total == 2 and {r["target"] for r in found.rows} == {"t0", "t1"}
    assert found.rows[0]["output"] == "the Needle is here"
    by_id = sample_page(run, SampleFilter(text="S00042"), 0, 10)
    assert by_id.total == 2


def test_an_unknown_scorer_is_a_key_error(store):
    run = load_run(store, RUN)
    with pytest.raises(KeyError):
        sample_page(run, SampleFilter(scorer="nope", outcome="right"), 0, 10)


def test_a_sample_detail_has_the_whole_row(store):
    run = load_run(store, RUN)
    detail = sample_detail(run, "t1", "s00011", 0)
    assert detail["prompt"] == "What is 11+1?" and detail["reference"] == "12"
    assert detail["output"] == "the Needle is here" and detail["cache_hit"] is True
    assert detail["scores"] == {"exact": 1.0, "numeric": 1.0}
    assert detail["metadata"] == {"level": "hard"} and detail["served_by"] == "prov-t1"
    assert sample_detail(run, "t1", "s00011", 3) is None
    assert sample_detail(run, "t9", "s00011", 0) is None


def test_summary_counts_errors_apart_and_groups_scores(store):
    summary = run_summary(load_run(store, RUN), ["level"])
    t1 = summary["targets"]["t1"]
    assert t1["rows"] == 120 and t1["errors"] == 1 and t1["error_kinds"] == {"rate_limited": 1}
    assert t1["cache_hits"] == 1
    exact = t1["scorers"]["exact"]
    assert exact["n"] == 119 and exact["mean"] == pytest.approx(79 / 119)
    assert exact["ci_low"] < exact["mean"] < exact["ci_high"]
    groups = exact["groups"]["level"]
    assert groups["easy"]["n"] == 60 and groups["hard"]["n"] == 59
    assert t1["latency_ms"]["p50"] is not None and sum(t1["latency_histogram"]["counts"]) == 118
    assert t1["cost_usd"] == pytest.approx(0.12)


def test_a_new_shard_is_seen_and_labels_stay_out_of_the_results(store):
    run = load_run(store, RUN)
    append_label(
        store,
        new_label(
            LabelRequest(target="t0", sample_id="s00001", scorer="exact", verdict=0), RUN, "a", "k"
        ),
    )
    assert load_run(store, RUN) is run  # cached: no new shard
    commit_shard(store, RUN, "t0", 99, [make_row(RUN, "t0", 500)], list(SCORERS))
    grown = load_run(store, RUN)
    assert grown is not run and grown.table.num_rows == 241
    # The _labels folder is invisible to the lake's readers.
    assert read_runs(store).num_rows == 241
    assert (
        ds.dataset(str(store.full_uri("runs")), format="parquet", partitioning="hive").count_rows()
        == 241
    )


def test_a_run_without_shards_reads_empty(tmp_path):
    store = open_store(str(tmp_path / "s"))
    write_run(store, "run-empty", ["t0"], 0)
    run = load_run(store, "run-empty")
    assert sample_page(run, SampleFilter(), 0, 10).total == 0
    assert run_summary(run)["targets"] == {}


def test_take_reads_rows_from_their_own_files_in_the_order_asked(store):
    run = load_run(store, RUN)
    positions = [239, 3, 130, 26, 25, 120]
    got = run.take(positions, ["sample_id", "target"]).to_pylist()
    everything = read_results(store, RUN, columns=["sample_id", "target"]).to_pylist()
    assert got == [everything[p] for p in positions]
    assert run.group_names("level") == ["easy", "hard"]


def test_row_scores_leave_errors_out(store):
    scores = row_scores(load_run(store, RUN), "t1", "exact")
    assert len(scores) == 120 and scores[("s00007", 0)] is None
    assert scores[("s00003", 0)] == 0.0 and scores[("s00004", 0)] == 1.0
