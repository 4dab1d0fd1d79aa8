"""The tests' row builders stay in step with the lake's schema: a column added to the result
row is added once, in `tests/result_rows.py`, and every builder on it follows."""

from __future__ import annotations

from evalcluster.store.fs import open_store
from evalcluster.store.lake import read_results, result_schema
from tests.result_rows import result_row
from tests.ui.lake_rows import SCORERS, make_row, write_run


def test_result_row_has_exactly_the_files_columns_for_its_scorers() -> None:
    assert set(result_row("r", "t", 3)) == set(result_schema(["exact", "numeric"]).names)
    only_exact = result_row("r", "t", 3, scores={"exact": 0.5})
    assert set(only_exact) == set(result_schema(["exact"]).names)
    assert only_exact["score_exact"] == 0.5


def test_overrides_replace_columns_and_scores_default_by_n() -> None:
    row = result_row("r", "t", 5, output="x", score_exact=0.0)
    assert (row["output"], row["score_exact"], row["score_numeric"]) == ("x", 0.0, None)


def test_workbench_rows_commit_and_read_back(tmp_path) -> None:
    store = open_store(str(tmp_path / "store"))
    write_run(store, "run-1", ["a"], 4, shard_size=2)
    rows = read_results(store, "run-1").to_pylist()
    assert [r["sample_id"] for r in rows] == ["s00000", "s00001", "s00002", "s00003"]
    assert [r["score_exact"] for r in rows] == [0.0, 1.0, 1.0, 0.0]
    assert set(make_row("run-1", "a", 0)) == set(result_schema(list(SCORERS)).names)
