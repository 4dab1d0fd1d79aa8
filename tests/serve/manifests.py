"""Run manifests as a driver writes them, for the tests of what the service reports from
them (status, events)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from evalcluster.store.manifest import RunManifest

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def run_manifest(run_id: str, status: str, targets: list[str], **fields: Any) -> RunManifest:
    """The manifest of `run_id` (suite ``s`` version ``v1``, in ``/store``), created and last
    written at `NOW`; `fields` gives the rest (shards, spec, comparison...)."""
    return RunManifest(
        run_id=run_id,
        suite="s",
        suite_version="v1",
        status=status,
        created_at=NOW,
        updated_at=NOW,
        store_uri="/store",
        targets=targets,
        **fields,
    )
