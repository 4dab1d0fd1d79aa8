"""Result files written before the `batch`, `cached_input_tokens` and `usd_saved_*` columns
existed still read beside new ones: every reader gives the missing columns as null, and the
summary counts only what the newer rows recorded."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evalcluster.errors import StoreError
from evalcluster.jobs.summary import build_summary
from evalcluster.store.fs import open_store
from evalcluster.store.lake import (
    ADDED_FIELDS,
    commit_shard,
    iter_result_batches,
    read_results,
    read_runs,
    shard_to_parquet_bytes,
)
from evalcluster.store.layout import shard_key
from evalcluster.suite.loader import load_suite
from tests.conftest import openai_provider, write_suite

from .conftest import SCORERS, result_row

RUN = "mixed"


def _old_shard_bytes(rows: list[dict]) -> bytes:
    """A shard file as an older version wrote it: no `ADDED_FIELDS` columns."""
    table = pq.read_table(pa.BufferReader(shard_to_parquet_bytes(rows, SCORERS)))
    table = table.drop_columns(sorted(ADDED_FIELDS))
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


@pytest.fixture
def store(tmp_path):
    store = open_store(str(tmp_path / "store"))
    old = [result_row(RUN, "t", n) for n in range(3)]
    store.put(shard_key(RUN, "t", 0), _old_shard_bytes(old))
    new = [
        result_row(
            RUN,
            "t",
            n,
            batch=True,
            cached_input_tokens=5,
            usd_saved_batch=0.25,
            usd_saved_cache=0.125,
        )  # fmt: skip
        for n in range(3, 5)
    ]
    assert commit_shard(store, RUN, "t", 1, new, SCORERS)
    return store


def test_read_results_gives_an_older_files_missing_columns_as_null(store):
    table = read_results(store, RUN)
    assert table.num_rows == 5
    assert table.column("batch").to_pylist() == [None, None, None, True, True]
    assert table.column("usd_saved_cache").to_pylist() == [None, None, None, 0.125, 0.125]
    names = table.column_names
    assert names.index("usd_saved_cache") < names.index("score_exact")  # the schema's order

    only_old = read_results(store, RUN, columns=["sample_id", "cached_input_tokens"], limit=2)
    assert only_old.column_names == ["sample_id", "cached_input_tokens"]
    assert only_old.column("cached_input_tokens").to_pylist() == [None, None]

    batches = list(iter_result_batches(store, RUN, columns=["batch", "sample_id"]))
    values = [v for b in batches for v in b.column(0).to_pylist()]
    assert values == [None, None, None, True, True]


def test_an_unknown_column_is_still_refused(store):
    with pytest.raises(StoreError, match="no column 'batched'"):
        read_results(store, RUN, columns=["batched"])


def test_read_runs_unifies_old_and_new_files(store):
    table = read_runs(store, columns=["sample_id", "batch", "usd_saved_batch"])
    by_sample = dict(
        zip(table.column("sample_id").to_pylist(), table.column("batch").to_pylist(), strict=True)
    )
    assert sorted(v for v in by_sample.values() if v is not None) == [True, True]
    assert sum(v is None for v in by_sample.values()) == 3


def test_summary_counts_the_savings_the_newer_rows_recorded(store, tmp_path):
    path = write_suite(
        tmp_path,
        providers={"p": openai_provider("http://127.0.0.1:9")},  # never called
        targets=[{"name": "t", "provider": "p", "model": "m"}],
    )
    summary = build_summary(store, RUN, load_suite(path), list(SCORERS), "finished")
    target = summary["targets"]["t"]
    assert target["rows"] == 5
    assert target["batch_rows"] == 2
    assert target["cached_input_tokens"] == 10
    assert target["usd_saved_batch"] == pytest.approx(0.5)
    assert target["usd_saved_cache"] == pytest.approx(0.25)
    assert summary["usd_saved_batch"] == pytest.approx(0.5)
    assert summary["usd_saved_cache"] == pytest.approx(0.25)
