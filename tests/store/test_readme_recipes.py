"""The README's ways to read results, run as written against a store of two different suites."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from evalcluster.errors import NotFoundError, StoreError
from evalcluster.store.fs import LocalStore, Store, open_store
from evalcluster.store.lake import commit_shard, read_runs
from evalcluster.store.manifest import RunManifest, write_manifest, write_summary

from .conftest import result_row

README = Path(__file__).resolve().parents[2] / "README.md"
SCORE_COLUMNS = {"score_exact", "score_numeric", "score_includes"}


def _results_section() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^### Results\n(.*?)(?=^##)", text, flags=re.DOTALL | re.MULTILINE)
    assert match, "README.md has no '### Results' section"
    return match.group(1)


def _python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", _results_section(), flags=re.DOTALL | re.MULTILINE)


def _mixed_store(store: Store) -> dict[str, int]:
    """Run ``run-a`` of a suite scored by exact+numeric and ``run-b`` of one scored by
    exact+includes, each with two targets and two shards; returns the rows per run."""
    counts = {"run-a": 0, "run-b": 0}
    for run_id, suite, scorers in [
        ("run-a", "arithmetic", ["exact", "numeric"]),
        ("run-b", "trivia", ["exact", "includes"]),
    ]:
        n = 0
        for target in ("alpha", "beta"):
            for index in range(2):
                rows = []
                for _ in range(3):
                    row = result_row(run_id, target, n, suite=suite)
                    if "includes" in scorers:
                        del row["score_numeric"]
                        row["score_includes"] = 0.5
                    rows.append(row)
                    n += 1
                assert commit_shard(store, run_id, target, index, rows, scorers)
        write_manifest(store, RunManifest(run_id=run_id, suite=suite, suite_version="v1",
                                          store_uri=store.uri))  # fmt: skip
        write_summary(store, run_id, {"alpha": {"exact/mean": 1.0}})
        counts[run_id] = n
    return counts


def _as_frame(value) -> pd.DataFrame:
    if isinstance(value, pd.DataFrame):
        return value
    if isinstance(value, pa.Table):
        return value.to_pandas()
    if isinstance(value, duckdb.DuckDBPyRelation):
        return value.df()
    raise AssertionError(f"a README recipe ends with a {type(value).__name__}, not a table")


def _run_block(code: str) -> pd.DataFrame:
    """Execute a README block like a notebook cell: the value of its last expression."""
    tree = ast.parse(code)
    assert tree.body and isinstance(tree.body[-1], ast.Expr), (
        f"block must end in an expression:\n{code}"
    )
    last = ast.Expression(tree.body.pop().value)
    namespace: dict = {}
    exec(compile(tree, "README.md", "exec"), namespace)
    return _as_frame(eval(compile(last, "README.md", "eval"), namespace))


def _assert_complete(frame: pd.DataFrame, counts: dict[str, int]) -> None:
    assert set(frame.columns) >= SCORE_COLUMNS
    assert frame["run_id"].astype(str).value_counts().to_dict() == counts
    by_run = {run: part for run, part in frame.groupby(frame["run_id"].astype(str))}
    assert by_run["run-a"]["score_numeric"].notna().any()
    assert by_run["run-a"]["score_includes"].isna().all()
    assert by_run["run-b"]["score_includes"].eq(0.5).all()
    assert by_run["run-b"]["score_numeric"].isna().all()
    assert set(frame["target"].astype(str)) == {"alpha", "beta"}


@pytest.fixture
def mixed_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Store, dict[str, int]]:
    """The README's ``evalstore`` folder, in the current directory."""
    monkeypatch.chdir(tmp_path)
    store = open_store("evalstore")
    return store, _mixed_store(store)


def test_a_plain_read_of_a_mixed_store_loses_score_columns(mixed_store):
    """The trap the README must steer around (so the fixture really is a mixed store)."""
    naive = ds.dataset("evalstore/runs", format="parquet", partitioning="hive").to_table()
    assert not set(naive.schema.names) >= SCORE_COLUMNS
    with pytest.raises(duckdb.Error, match="score_"):
        duckdb.sql(
            "select score_numeric, score_includes from read_parquet("
            "'evalstore/runs/*/*/*.parquet', hive_partitioning=true)"
        ).fetchall()


def test_every_readme_recipe_reads_every_row_and_score_column(mixed_store):
    _, counts = mixed_store
    blocks = _python_blocks()
    assert any("read_runs(" in b for b in blocks), "README shows the read_runs helper"
    assert any("pyarrow.dataset" in b for b in blocks), "README shows a pyarrow/pandas recipe"
    assert any("duckdb" in b for b in blocks), "README shows a DuckDB recipe"
    for block in blocks:
        if "read_parquet(" in block and "duckdb" in block:
            assert "union_by_name=true" in block
        _assert_complete(_run_block(block), counts)


def test_read_runs_unifies_scores_and_narrows_by_run_and_column(store: Store):
    counts = _mixed_store(store)
    table = read_runs(store)
    names = table.schema.names
    assert names[:4] == ["run_id", "suite", "suite_version", "target"]
    assert names[-3:] == ["score_exact", "score_numeric", "score_includes"]
    assert table.schema.field("run_id").type == pa.string()
    _assert_complete(table.to_pandas(), counts)

    only_b = read_runs(store, run_ids=["run-b"], columns=["run_id", "score_includes"])
    assert only_b.schema.names == ["run_id", "score_includes"]
    assert only_b.num_rows == counts["run-b"]
    assert set(only_b.column("run_id").to_pylist()) == {"run-b"}
    with pytest.raises(StoreError, match="no column 'score_f1'"):
        read_runs(store, columns=["score_f1"])


def test_read_runs_takes_a_uri_and_refuses_a_store_without_runs(tmp_path: Path):
    with pytest.raises(NotFoundError, match="no runs"):
        read_runs(str(tmp_path / "empty"))
    store = open_store(str(tmp_path / "evalstore"))
    assert isinstance(store, LocalStore)
    counts = _mixed_store(store)
    assert read_runs(str(tmp_path / "evalstore")).num_rows == sum(counts.values())
