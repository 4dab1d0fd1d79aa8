"""Who owns a run started over HTTP, and what was asked, kept beside the run in the lake.

``runs/run_id=<id>/_owner.json`` is written once (a conditional put) before the run's driver
starts, so a run is never visible without its owner: another tenant's run answers 404, and a run
with no owner record (started from the command line into the same store) is visible to admins
only. The record also holds the submission (suite version and options), which is what
``POST /v1/runs/{id}/resume`` needs to start the run again after its driver is gone.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from evalcluster.errors import NotFoundError, StoreError
from evalcluster.store.fs import Store
from evalcluster.store.layout import owner_key


class RunOwner(BaseModel):
    """The owner record of one HTTP run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    tenant: str
    key_id: str = Field(description="Which of the tenant's keys started it (a digest prefix).")
    suite: str
    suite_version: str
    created_at: str
    targets: list[str] = Field(default_factory=list)
    max_samples: int | None = None
    budget_usd: float | None = None
    no_cache: bool = False
    priority: float = 1.0


def write_owner(store: Store, owner: RunOwner) -> None:
    """Record `owner`; StoreError if the run already has an owner (ids are never reused)."""
    data = json.dumps(owner.model_dump(), sort_keys=True).encode()
    if not store.put_if_absent(owner_key(owner.run_id), data):
        raise StoreError(f"run {owner.run_id!r} already has an owner")


def read_owner(store: Store, run_id: str) -> RunOwner | None:
    """The owner record of `run_id`, None for a run not started over HTTP (or no run)."""
    try:
        raw = store.get(owner_key(run_id))
    except NotFoundError:
        return None
    data: Any = json.loads(raw)
    return RunOwner.model_validate(data)
