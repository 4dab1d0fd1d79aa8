from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from evalcluster.errors import StoreError
from evalcluster.store.fs import Store
from evalcluster.store.layout import manifest_key
from evalcluster.store.manifest import (
    RunManifest,
    ShardRecord,
    code_version,
    read_manifest,
    read_summary,
    write_manifest,
    write_summary,
)


def _manifest(store: Store) -> RunManifest:
    t0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    return RunManifest(
        run_id="arithmetic-20261126-120000-abcdef",
        suite="arithmetic",
        suite_version="v-abc123",
        status="running",
        created_at=t0,
        updated_at=t0,
        store_uri=store.uri,
        targets=["alpha", "beta"],
        shards={
            "alpha": {
                0: ShardRecord(rows=256, committed_at=t0, key="runs/x/shard-0.parquet"),
                11: ShardRecord(rows=17, committed_at=t0, key="runs/x/shard-11.parquet"),
            }
        },
        total_shards={"alpha": 12, "beta": 12},
        options={"max_samples": 100, "budget_usd": 5.0, "no_cache": False},
        mlflow_run_id="abc",
        resumed_from_mlflow_run_ids=["old1"],
        spec={"name": "arithmetic", "targets": [{"name": "alpha"}], "epochs": 1},
    )


def test_a_manifest_round_trips_through_the_store(store: Store):
    manifest = _manifest(store)
    write_manifest(store, manifest)
    again = read_manifest(store, manifest.run_id)
    assert again == manifest
    assert list(again.shards["alpha"]) == [0, 11]
    assert again.created_at.tzinfo is not None
    assert again.rows_committed() == 273 and again.rows_committed("beta") == 0
    stored = json.loads(store.get(manifest_key(manifest.run_id)))
    assert stored["status"] == "running" and stored["code_version"] == code_version()


def test_rewriting_a_manifest_replaces_it_whole(store: Store):
    manifest = _manifest(store)
    write_manifest(store, manifest)
    write_manifest(store, manifest.model_copy(update={"status": "finished", "error": None}))
    again = read_manifest(store, manifest.run_id)
    assert again.status == "finished" and again.is_terminal
    assert store.list(f"runs/run_id={manifest.run_id}/") == [manifest_key(manifest.run_id)]


def test_a_missing_manifest_reads_as_none(store: Store):
    assert read_manifest(store, "run-none") is None
    assert read_summary(store, "run-none") is None


def test_a_corrupt_manifest_is_a_store_error_naming_the_field_and_key(store: Store):
    good = RunManifest(run_id="run-bad", suite="s", suite_version="v", store_uri=store.uri)
    broken = good.model_dump(mode="json") | {"status": "exploded"}
    store.put(manifest_key("run-bad"), json.dumps(broken).encode())
    with pytest.raises(StoreError) as info:
        read_manifest(store, "run-bad")
    assert "runs/run_id=run-bad/_manifest.json" in str(info.value)
    assert "status" in str(info.value)


def test_manifest_refuses_run_ids_the_lake_cannot_partition_by(local_store):
    with pytest.raises(ValidationError, match="run_id"):
        RunManifest(run_id="20261126", suite="s", suite_version="v", store_uri="x")
    with pytest.raises(ValidationError, match="status"):
        RunManifest(run_id="r1", suite="s", suite_version="v", store_uri="x", status="done")


def test_summary_round_trips_and_stores_non_finite_numbers_as_null(store: Store):
    summary = {"alpha": {"exact/mean": 0.5, "exact/stderr": float("nan"), "n": 2}}
    write_summary(store, "run-a", summary)
    assert read_summary(store, "run-a") == {"alpha": {"exact/mean": 0.5, "exact/stderr": None,
                                                      "n": 2}}  # fmt: skip
    with pytest.raises(StoreError, match="not JSON"):
        write_summary(store, "run-a", {"x": object()})


def test_code_version_names_the_installed_package():
    assert code_version().startswith("0.1.0")
