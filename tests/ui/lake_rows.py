"""Result rows written straight into a store, for the workbench's tests and its benchmark."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from evalcluster.store.fs import Store
from evalcluster.store.lake import commit_shard
from evalcluster.store.manifest import RunManifest, write_manifest
from tests.result_rows import result_row

SCORERS = ("exact", "numeric")


def make_row(run_id: str, target: str, i: int, **overrides: Any) -> dict[str, Any]:
    """Row `i` of `target`: right when i % 3 != 0, group "level" easy/hard by parity."""
    right = i % 3 != 0
    score = 1.0 if right else 0.0
    row = result_row(
        run_id,
        target,
        i,
        scores={"exact": score, "numeric": score},
        suite="arith",
        suite_version="v-test",
        provider=f"prov-{target}",
        served_by=f"prov-{target}",
        sample_id=f"s{i:05d}",
        output=str(i + 1) if right else "no idea",
        input_tokens=10,
        cost_usd=0.001,
        latency_ms=10.0 + i % 50,
        finished_at=datetime(2026, 11, 27, 12, 0, i % 60, tzinfo=UTC),
        metadata=json.dumps({"level": "easy" if i % 2 == 0 else "hard"}),
    )
    row.update(overrides)
    return row


RowMaker = Callable[[str, str, int], dict[str, Any]]


def write_run(
    store: Store,
    run_id: str,
    targets: Sequence[str],
    n: int,
    *,
    shard_size: int = 50,
    make: RowMaker = make_row,
    scorers: Sequence[str] = SCORERS,
    status: str = "finished",
    group_by: Sequence[str] = ("level",),
) -> None:
    """`n` rows per target in shards of `shard_size`, and a manifest."""
    for target in targets:
        for k, start in enumerate(range(0, n, shard_size)):
            rows = [make(run_id, target, i) for i in range(start, min(n, start + shard_size))]
            commit_shard(store, run_id, target, k, rows, list(scorers))
    manifest = RunManifest(
        run_id=run_id,
        suite="arith",
        suite_version="v-test",
        status=status,  # type: ignore[arg-type]
        store_uri=store.uri,
        targets=list(targets),
        spec={"name": "arith", "group_by": list(group_by)},
    )
    write_manifest(store, manifest)
