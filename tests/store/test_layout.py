from __future__ import annotations

import os

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from evalcluster.errors import StoreError
from evalcluster.store.layout import (
    ShardFile,
    check_partition_value,
    manifest_key,
    parse_shard_key,
    shard_key,
    summary_key,
)

ACCEPTED = ["r1", "4o-mini", "gpt-4o", "arithmetic-20261126-101500-ab12cd", "1.0.0a", "e", "x1e5"]
REFUSED = ["20261126", "-3", "1.5", "2026-11-26", "1-2-3", "2026-11-26T10", "0x10", "1e5",
           "epoch", "Infinity", "inf", "nan", "true", "NULL", "", "_x", ".x", "a/b", "a=b",
           "a b", "x" * 129]  # fmt: skip


def test_keys_follow_the_documented_layout():
    assert shard_key("r1", "gpt-4o", 3) == "runs/run_id=r1/target=gpt-4o/shard-3.parquet"
    assert manifest_key("r1") == "runs/run_id=r1/_manifest.json"
    assert summary_key("r1") == "runs/run_id=r1/_summary.json"
    parsed = parse_shard_key("runs/run_id=r1/target=gpt-4o/shard-12.parquet")
    assert parsed == ShardFile("gpt-4o", 12, "runs/run_id=r1/target=gpt-4o/shard-12.parquet")
    assert parse_shard_key("runs/run_id=r1/_manifest.json") is None


@pytest.mark.parametrize("index", [-1, 1.0, True, "2"])
def test_shard_index_must_be_a_non_negative_int(index):
    with pytest.raises(StoreError, match="shard index"):
        shard_key("r1", "t", index)


@pytest.mark.parametrize("value", REFUSED)
def test_values_a_reader_would_not_type_as_string_are_refused(value: str):
    with pytest.raises(StoreError, match="run_id"):
        check_partition_value("run_id", value)


def _reader_types(root: str, value: str) -> tuple[str, pa.DataType]:
    folder = os.path.join(root, f"run_id={value}", "target=t")
    os.makedirs(folder)
    pq.write_table(pa.table({"run_id": [value], "target": ["t"]}), f"{folder}/shard-0.parquet")
    duck = duckdb.sql(
        f"DESCRIBE SELECT * FROM read_parquet('{root}/*/*/*.parquet', hive_partitioning=true)"
    ).fetchall()
    arrow = ds.dataset(root, format="parquet", partitioning="hive").schema
    return dict((r[0], r[1]) for r in duck)["run_id"], arrow.field("run_id").type


@pytest.mark.parametrize("value", ACCEPTED)
def test_accepted_values_read_back_as_strings_in_duckdb_and_pyarrow(tmp_path, value: str):
    assert check_partition_value("run_id", value) == value
    assert _reader_types(str(tmp_path), value) == ("VARCHAR", pa.string())


def test_a_numeric_run_id_is_why_the_check_exists(tmp_path):
    # DuckDB types the partition as BIGINT and pyarrow refuses to merge int32 with string.
    with pytest.raises(pa.ArrowTypeError):
        _reader_types(str(tmp_path), "20261126")
