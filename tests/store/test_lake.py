from __future__ import annotations

import io
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from evalcluster.errors import NotFoundError, StoreError
from evalcluster.store.fs import LocalStore, Store
from evalcluster.store.lake import (
    commit_shard,
    iter_result_batches,
    list_run_ids,
    list_shards,
    read_results,
    result_schema,
    runs_dataset,
    shard_key,
    shard_to_parquet_bytes,
)
from evalcluster.store.manifest import RunManifest, write_manifest, write_summary

from .conftest import ACCESS_KEY, SCORERS, SECRET_KEY, result_row

EXPECTED_COLUMNS = [
    "run_id", "suite", "suite_version", "target", "provider", "served_by", "model", "sample_id",
    "epoch", "prompt", "reference", "output", "finish_reason", "input_tokens", "output_tokens",
    "usage_estimated", "cost_usd", "latency_ms", "attempts", "cache_hit", "error_kind", "error",
    "request_hash", "finished_at", "metadata", "judge", "judge_input_tokens",
    "judge_output_tokens", "judge_cost_usd", "batch", "cached_input_tokens", "usd_saved_batch",
    "usd_saved_cache", "score_exact", "score_numeric",
]  # fmt: skip


def _rows(run_id: str, target: str, start: int, count: int) -> list[dict]:
    return [result_row(run_id, target, n) for n in range(start, start + count)]


def _populate(store: Store, run_id: str = "run-a") -> list[dict]:
    """Two targets, shards committed out of order, plus the run's JSON files and a temp file.

    Returns the rows in the order readers must give them: by target, shard index, row.
    """
    layout = {("beta", 1): (100, 3), ("alpha", 10): (50, 4), ("alpha", 2): (0, 5)}
    for (target, index), (start, count) in layout.items():
        assert commit_shard(store, run_id, target, index, _rows(run_id, target, start, count),
                            SCORERS)  # fmt: skip
    write_manifest(store, RunManifest(run_id=run_id, suite="arithmetic",
                                      suite_version="v-abc123", store_uri=store.uri))  # fmt: skip
    write_summary(store, run_id, {"alpha": {"exact/mean": 1.0}})
    if isinstance(store, LocalStore):  # a writer's leftover temp file must stay invisible
        temp = store.full_uri(f"runs/run_id={run_id}/target=alpha") + "/.shard-3.parquet.x.tmp"
        with open(temp, "wb") as f:
            f.write(b"partial")
    order = [("alpha", 2), ("alpha", 10), ("beta", 1)]
    return [row for key in order for row in _rows(run_id, key[0], *layout[key])]


def test_result_schema_has_the_documented_columns_in_order():
    schema = result_schema(SCORERS)
    assert schema.names == EXPECTED_COLUMNS
    assert schema.field("epoch").type == pa.int32()
    assert schema.field("attempts").type == pa.int32()
    assert schema.field("finished_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("score_numeric").type == pa.float64()
    nullable = {f.name for f in schema if f.nullable}
    assert nullable == {"reference", "output", "finish_reason", "error_kind", "error", "judge",
                        "score_exact", "score_numeric"}  # fmt: skip


def test_a_shard_file_is_zstd_parquet_with_every_column_but_the_partition_ones():
    rows = _rows("run-a", "alpha", 0, 3)
    data = shard_to_parquet_bytes(rows, SCORERS)
    parquet = pq.ParquetFile(io.BytesIO(data))
    assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"
    table = parquet.read()
    # run_id and target are hive partitions: their values are in the file's path
    assert table.schema.names == [c for c in EXPECTED_COLUMNS if c not in ("run_id", "target")]
    assert table.column("finished_at")[0].as_py() == datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
    assert table.column("score_numeric").to_pylist() == [None, 1.0, 1.0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"epoch": "0"}, "row 1: column 'epoch': expected int32, got str"),
        ({"cache_hit": 1}, "row 1: column 'cache_hit': expected bool, got int"),
        ({"input_tokens": True}, "row 1: column 'input_tokens': expected int64, got bool"),
        ({"attempts": 2**40}, "row 1: column 'attempts': 1099511627776 does not fit int32"),
        ({"metadata": {"a": 1}}, "row 1: column 'metadata': expected string, got dict"),
        ({"finished_at": datetime(2026, 1, 1)}, "row 1: column 'finished_at': a naive datetime"),
        ({"prompt": None}, "row 1: column 'prompt' must not be null"),
        ({"score_f1": 1.0}, "row 1: unknown column 'score_f1'"),
    ],
)
def test_invalid_rows_are_refused_naming_row_and_column(change, message):
    rows = _rows("run-a", "alpha", 0, 3)
    rows[1] = {**rows[1], **change}
    with pytest.raises(StoreError) as info:
        shard_to_parquet_bytes(rows, SCORERS)
    assert message in str(info.value)


def test_a_row_missing_a_column_is_refused_naming_it():
    rows = _rows("run-a", "alpha", 0, 2)
    del rows[1]["request_hash"]
    with pytest.raises(StoreError, match="row 1: missing column 'request_hash'"):
        shard_to_parquet_bytes(rows, SCORERS)


def test_commit_shard_commits_once_and_keeps_the_first_content(store: Store):
    first = _rows("run-a", "alpha", 0, 2)
    second = _rows("run-a", "alpha", 10, 5)
    assert commit_shard(store, "run-a", "alpha", 0, first, SCORERS) is True
    assert commit_shard(store, "run-a", "alpha", 0, second, SCORERS) is False
    table = read_results(store, "run-a")
    assert table.column("sample_id").to_pylist() == ["s0", "s1"]


def test_a_failure_while_serializing_leaves_no_object(store: Store):
    class Exploding(list):
        def __iter__(self):
            yield from self[:2]
            raise RuntimeError("boom while building the third row")

    bad = _rows("run-a", "alpha", 0, 4)
    bad[3]["output_tokens"] = 1.5
    with pytest.raises(StoreError, match="output_tokens"):
        commit_shard(store, "run-a", "alpha", 0, bad, SCORERS)
    with pytest.raises(StoreError, match="do not match shard"):
        commit_shard(store, "run-a", "alpha", 0, _rows("run-b", "alpha", 0, 1), SCORERS)
    with pytest.raises(RuntimeError):
        commit_shard(store, "run-a", "alpha", 1, Exploding(_rows("run-a", "alpha", 0, 4)), SCORERS)
    assert store.list("runs/") == []
    if isinstance(store, LocalStore):
        assert list_shards(store, "run-a") == []


def test_the_local_layout_reads_as_one_table_in_pyarrow_and_duckdb(local_store: LocalStore):
    expected = _populate(local_store, "run-a") + _populate(local_store, "run-b")
    runs = local_store.full_uri("runs")

    table = ds.dataset(runs, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == len(expected)
    assert sorted(table.schema.names) == sorted(EXPECTED_COLUMNS)
    assert table.schema.field("run_id").type == pa.string()
    got = table.sort_by([("run_id", "ascending"), ("request_hash", "ascending")])
    want = sorted(expected, key=lambda r: (r["run_id"], r["request_hash"]))
    assert got.select(EXPECTED_COLUMNS).to_pylist() == want

    con = duckdb.connect()
    try:
        relation = con.sql(
            f"SELECT * FROM read_parquet('{runs}/*/*/*.parquet', hive_partitioning=true)"
        )
        assert sorted(relation.columns) == sorted(EXPECTED_COLUMNS)
        types = dict(zip(relation.columns, relation.types, strict=True))
        assert (str(types["run_id"]), str(types["target"])) == ("VARCHAR", "VARCHAR")
        counts = con.sql(
            f"SELECT run_id, target, count(*), sum(input_tokens) FROM read_parquet("
            f"'{runs}/*/*/*.parquet', hive_partitioning=true) GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()
    assert counts == [
        ("run-a", "alpha", 9, sum(r["input_tokens"] for r in expected[:9])),
        ("run-a", "beta", 3, sum(r["input_tokens"] for r in expected[9:12])),
        ("run-b", "alpha", 9, sum(r["input_tokens"] for r in expected[12:21])),
        ("run-b", "beta", 3, sum(r["input_tokens"] for r in expected[21:24])),
    ]


def test_the_s3_layout_reads_as_one_table_through_pyarrow_s3filesystem(s3_store, s3_endpoint):
    expected = _populate(s3_store, "run-a")
    filesystem = pafs.S3FileSystem(
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        endpoint_override=s3_endpoint.url,
        region="us-east-1",
    )
    path = s3_store.full_uri("runs")[len("s3://") :]
    table = ds.dataset(path, filesystem=filesystem, format="parquet", partitioning="hive")
    table = table.to_table()
    assert sorted(table.schema.names) == sorted(EXPECTED_COLUMNS)
    got = table.sort_by("request_hash").select(EXPECTED_COLUMNS).to_pylist()
    assert got == sorted(expected, key=lambda r: r["request_hash"])


def test_read_results_orders_by_target_then_shard_number_then_row(store: Store):
    expected = _populate(store)
    table = read_results(store, "run-a")
    assert table.schema.names == EXPECTED_COLUMNS
    assert table.to_pylist() == expected
    assert [s.index for s in list_shards(store, "run-a")] == [2, 10, 1]
    batches = list(iter_result_batches(store, "run-a", columns=["sample_id"], batch_size=2))
    assert [r["sample_id"] for b in batches for r in b.to_pylist()] == [
        r["sample_id"] for r in expected
    ]


def test_pages_are_slices_of_the_whole_run(store: Store):
    expected = [r["sample_id"] for r in _populate(store)]
    for offset, limit in [(0, 1), (0, 5), (3, 4), (4, 6), (8, 100), (11, 1), (12, 5), (50, 5)]:
        page = read_results(store, "run-a", columns=["sample_id"], offset=offset, limit=limit)
        assert page.column("sample_id").to_pylist() == expected[offset : offset + limit]
        assert page.schema.names == ["sample_id"]
    beta = read_results(store, "run-a", target="beta", offset=1)
    assert beta.column("sample_id").to_pylist() == ["s101", "s102"]


def test_a_small_page_is_unaffected_by_the_files_after_it(store: Store):
    _populate(store)
    # Ruin the last file: a page that touched it would fail.
    store.put(shard_key("run-a", "beta", 1), b"this is not parquet")
    page = read_results(store, "run-a", offset=2, limit=5)
    assert page.column("sample_id").to_pylist() == ["s2", "s3", "s4", "s50", "s51"]
    with pytest.raises(StoreError, match="shard-1.parquet"):
        read_results(store, "run-a")


def _counting(store: Store) -> list[str]:
    """Record, on this store object, the keys pyarrow is asked to open."""
    opened: list[str] = []
    real = store.arrow_filesystem_and_path

    def counted(key: str = ""):
        opened.append(key)
        return real(key)

    store.arrow_filesystem_and_path = counted
    return opened


def test_paging_opens_only_the_files_up_to_the_page(store: Store):
    for index in range(40):
        commit_shard(store, "run-a", "alpha", index, _rows("run-a", "alpha", index * 2, 2), SCORERS)
    opened = _counting(store)
    page = read_results(store, "run-a", columns=["sample_id"], offset=1, limit=2)
    assert page.column("sample_id").to_pylist() == ["s1", "s2"]
    # Local files open one by one; S3 opens windows of 1, 2, 4, ... files.
    assert len(opened) == (2 if isinstance(store, LocalStore) else 3)
    opened.clear()
    deeper = read_results(store, "run-a", columns=["sample_id"], offset=21, limit=3)
    assert deeper.column("sample_id").to_pylist() == ["s21", "s22", "s23"]
    assert len(opened) == (12 if isinstance(store, LocalStore) else 15)


def test_a_page_reads_only_the_row_groups_it_needs(local_store: LocalStore):
    rows = _rows("run-a", "alpha", 0, 10)
    table = pa.Table.from_pylist(rows, schema=result_schema(SCORERS))
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=3)
    local_store.put(shard_key("run-a", "alpha", 0), sink.getvalue())
    page = read_results(local_store, "run-a", columns=["sample_id"], offset=4, limit=4)
    assert page.column("sample_id").to_pylist() == ["s4", "s5", "s6", "s7"]


def test_reading_unknown_runs_and_columns_fails_clearly(store: Store):
    with pytest.raises(NotFoundError, match="no run 'run-x'"):
        read_results(store, "run-x")
    _populate(store)
    with pytest.raises(StoreError, match="no column 'score_f1'"):
        read_results(store, "run-a", columns=["score_f1"])
    with pytest.raises(StoreError, match="offset"):
        read_results(store, "run-a", offset=-1)


def test_a_run_without_shards_yet_reads_as_empty(store: Store):
    write_manifest(store, RunManifest(run_id="run-new", suite="s", suite_version="v1",
                                      store_uri=store.uri))  # fmt: skip
    assert read_results(store, "run-new").num_rows == 0
    assert read_results(store, "run-new", columns=["cost_usd"]).schema.names == ["cost_usd"]
    assert list(iter_result_batches(store, "run-new")) == []


def test_list_run_ids_finds_every_run(store: Store):
    assert list_run_ids(store) == []
    _populate(store, "run-b")
    _populate(store, "run-a")
    assert list_run_ids(store) == ["run-a", "run-b"]


def test_runs_dataset_lines_up_runs_with_different_scorers(store: Store):
    commit_shard(store, "run-a", "alpha", 0, _rows("run-a", "alpha", 0, 2), SCORERS)
    other = [
        {k: v for k, v in result_row("run-b", "alpha", n).items() if k != "score_numeric"}
        | {"score_f1": 0.5}
        for n in range(3)
    ]
    commit_shard(store, "run-b", "alpha", 0, other, ["exact", "f1"])
    table = runs_dataset(store, ["exact", "numeric", "f1"]).to_table()
    assert table.num_rows == 5
    by_run = {}
    for row in table.select(["run_id", "score_numeric", "score_f1"]).to_pylist():
        by_run.setdefault(row["run_id"], []).append((row["score_numeric"], row["score_f1"]))
    assert sorted(by_run["run-a"], key=str) == [(1.0, None), (None, None)]
    assert by_run["run-b"] == [(None, 0.5)] * 3
