"""A run's manifest and summary: the JSON files beside its shards.

The manifest says what a run is (suite, version, spec, code version, options) and how far it got
(status, committed shards). Only the run's driver writes it, always whole (`Store.put` is an
atomic overwrite), so readers see the previous or the next state, never a mix.
"""

from __future__ import annotations

import json
import math
import subprocess
from datetime import UTC, datetime
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from evalcluster.errors import NotFoundError, StoreError
from evalcluster.runstate import RunState, RunStateLiteral, is_terminal
from evalcluster.store.fs import Store
from evalcluster.store.layout import check_run_id, manifest_key, summary_key

__all__ = [
    "RunManifest",
    "ShardRecord",
    "code_version",
    "read_manifest",
    "read_summary",
    "write_manifest",
    "write_summary",
]


@cache
def code_version() -> str:
    """This evalcluster's version, with ``+g<git sha>`` when it runs from a git checkout."""
    try:
        version = metadata.version("evalcluster")
    except metadata.PackageNotFoundError:
        version = "0+unknown"
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{version}+g{sha}" if sha else version


def _now() -> datetime:
    return datetime.now(UTC)


class ShardRecord(BaseModel):
    """One committed shard."""

    model_config = ConfigDict(extra="forbid")

    rows: int = Field(ge=0, description="Result rows in the shard file.")
    committed_at: datetime = Field(description="When the driver learnt of the commit (UTC).")
    key: str = Field(description="The shard file's key, relative to the store root.")


class RunManifest(BaseModel):
    """What a run is and how far it got. Stored at ``runs/run_id=<id>/_manifest.json``."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    suite: str = Field(description="The suite's name.")
    suite_version: str = Field(description="Content hash of the resolved suite.")
    code_version: str = Field(default_factory=code_version)
    status: RunStateLiteral = RunState.PENDING
    created_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)
    store_uri: str
    targets: list[str] = Field(default_factory=list)
    shards: dict[str, dict[int, ShardRecord]] = Field(
        default_factory=dict, description="Committed shards: target -> shard index -> record."
    )
    total_shards: dict[str, int] = Field(
        default_factory=dict, description="Shards each target has in all."
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Run options: max_samples, budget_usd, no_cache, ..."
    )
    mlflow_run_id: str | None = None
    resumed_from_mlflow_run_ids: list[str] = Field(default_factory=list)
    mlflow_logging: str | None = Field(
        None,
        description="'detached': MLflow is logged by a process that outlived the driver "
        "(jobs/mlflow_worker.py); its outcome is in _mlflow.json. 'after_requests': that process "
        "starts once the requests are done, so no MLflow run exists yet (none, if killed now).",
    )
    error: str | None = None
    comparison: dict[str, Any] | None = Field(
        None, description="A `compare:` run's verdict and sequence (jobs/sequential_compare.py)."
    )
    spec: dict[str, Any] = Field(default_factory=dict, description="The resolved suite.")

    @field_validator("run_id")
    @classmethod
    def _partition_safe(cls, value: str) -> str:
        try:
            return check_run_id(value)
        except StoreError as e:
            raise ValueError(str(e)) from None

    @property
    def is_terminal(self) -> bool:
        """Whether the run has ended (it may still be resumed unless finished)."""
        return is_terminal(self.status)

    def rows_committed(self, target: str | None = None) -> int:
        """Result rows in the committed shards (of one target)."""
        targets = [target] if target is not None else list(self.shards)
        return sum(r.rows for t in targets for r in self.shards.get(t, {}).values())


def write_manifest(store: Store, manifest: RunManifest) -> None:
    """Store `manifest` whole, replacing the previous one atomically."""
    key = manifest_key(manifest.run_id)
    store.put(key, manifest.model_dump_json(indent=2).encode())


def read_manifest(store: Store, run_id: str) -> RunManifest | None:
    """The run's manifest, or None if the run has none. StoreError if it is unreadable."""
    key = manifest_key(run_id)
    try:
        data = store.get(key)
    except NotFoundError:
        return None
    try:
        return RunManifest.model_validate_json(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise StoreError(f"invalid manifest {store.full_uri(key)}: {where}: {first['msg']}") from e


def write_summary(store: Store, run_id: str, summary: dict[str, Any]) -> None:
    """Store the run's aggregates (a JSON object) at ``runs/run_id=<id>/_summary.json``."""
    key = summary_key(run_id)
    try:
        data = json.dumps(
            _finite(summary), indent=2, sort_keys=True, allow_nan=False, default=_json_default
        )
    except (TypeError, ValueError) as e:
        raise StoreError(f"summary of run {run_id!r} is not JSON: {e}") from e
    store.put(key, data.encode())


def read_summary(store: Store, run_id: str) -> dict[str, Any] | None:
    """The run's summary, or None if it has none yet."""
    key = summary_key(run_id)
    try:
        data = store.get(key)
    except NotFoundError:
        return None
    try:
        summary = json.loads(data)
    except ValueError as e:
        raise StoreError(f"invalid summary {store.full_uri(key)}: {e}") from e
    if not isinstance(summary, dict):
        raise StoreError(f"invalid summary {store.full_uri(key)}: not a JSON object")
    return summary


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _finite(value: Any) -> Any:
    """`value` with NaN and infinities (a stderr of one sample, say) as null: JSON has neither."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
