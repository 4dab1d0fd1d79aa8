"""A run's status, from whichever source knows best.

While a run goes, the live-run registry (actor ``runs``) holds its progress; once it ends the
driver closes it there and the manifest (status, committed rows) and ``_summary.json`` (metrics)
are the truth. Before the manifest exists only the run's driver actor knows the run. Precedence:
a terminal manifest, then the live run, then the driver's outcome, then a manifest left
non-terminal by a driver that is gone.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from evalcluster.actors.run import get_live_run
from evalcluster.serve.context import ServiceContext
from evalcluster.serve.launcher import get_driver, read_outcome
from evalcluster.serve.owners import RunOwner
from evalcluster.serve.schemas import RunStatus, TargetStatus
from evalcluster.store.layout import check_partition_value
from evalcluster.store.manifest import TERMINAL_STATUSES, RunManifest, read_manifest, read_summary

ACTOR_CALL_TIMEOUT_S = 10.0
LAUNCH_GRACE_S = 30.0  # a run with an owner and no driver yet is starting, not interrupted
INTERRUPTED = (
    "no driver is working on this run any more (the service or its node stopped); "
    "POST /v1/runs/{run_id}/resume finishes what is missing"
)
ORPHANED = (
    "no driver is working on this run any more; resume it with "
    "`evalcluster run SUITE.yaml --run-id {run_id}`"
)


@dataclass(frozen=True)
class RunSources:
    """Everything known about one run, each part None when that source has nothing."""

    run_id: str
    manifest: RunManifest | None = None
    summary: dict[str, Any] | None = None
    snapshot: dict[str, Any] | None = None  # from the live-run registry
    driver: dict[str, Any] | None = None  # RunDriver.state()
    owner: RunOwner | None = None  # runs started over HTTP
    outcome: dict[str, Any] | None = None  # what an exited driver left (`_outcome.json`)

    @property
    def known(self) -> bool:
        parts = (self.manifest, self.snapshot, self.driver, self.owner)
        return any(x is not None for x in parts)


def is_valid_run_id(run_id: str) -> bool:
    """Whether a run could have this id (the store refuses others as keys)."""
    try:
        check_partition_value("run_id", run_id)
    except Exception:  # noqa: BLE001 - StoreError or a non-string
        return False
    return True


def is_terminal(status: str) -> bool:
    return status in TERMINAL_STATUSES


def compose_status(src: RunSources) -> RunStatus:
    """The run's status from its sources (pure: no I/O)."""
    manifest, driver = src.manifest, src.driver
    snapshot = src.snapshot or (driver or {}).get("snapshot")
    live = src.snapshot is not None or (driver is not None and driver["phase"] != "ended")
    message: str | None = None
    if manifest is not None and manifest.is_terminal:
        status, message, live = manifest.status, manifest.error, False
        if message is None and driver is not None and driver["status"] == "failed":
            message = driver["message"]  # it failed after recording the status (the summary)
    elif src.snapshot is not None:
        status, message = src.snapshot["status"], src.snapshot.get("message")
    elif driver is not None and driver["phase"] == "ended":
        status, message = driver["status"], driver["message"]
    elif driver is not None:
        status = "pending" if driver["phase"] == "starting" or manifest is None else "running"
    elif src.outcome is not None and src.outcome.get("status") in TERMINAL_STATUSES:
        status, message = src.outcome["status"], src.outcome.get("message")
    elif src.owner is not None and manifest is None and _just_submitted(src.owner):
        status = "pending"  # its driver is being created
    elif src.owner is not None:
        status, message = "interrupted", INTERRUPTED.format(run_id=src.run_id)
    elif manifest is not None:
        status, message = manifest.status, ORPHANED.format(run_id=src.run_id)
    else:
        status = "pending"
    ended = is_terminal(status) or status == "interrupted"
    targets = _targets(manifest, src.summary, snapshot, terminal=ended)
    owner_suite = src.owner.suite if src.owner else None
    owner_version = src.owner.suite_version if src.owner else None
    totals = [t.total for t in targets.values()]
    return RunStatus(
        run_id=src.run_id,
        suite=manifest.suite if manifest else (snapshot or {}).get("suite") or owner_suite,
        suite_version=manifest.suite_version if manifest else owner_version,
        status=status,
        message=message,
        live=live,
        cancel_requested=bool(
            (snapshot or {}).get("cancel_requested") or (driver or {}).get("cancel_requested")
        ),
        created_at=_iso(manifest.created_at) if manifest else None,
        updated_at=_iso(manifest.updated_at) if manifest else None,
        done=sum(t.done for t in targets.values()),
        total=None if None in totals or not totals else sum(totals),  # type: ignore[arg-type]
        errors=sum(t.errors for t in targets.values()),
        cost_usd=round(sum(t.cost_usd for t in targets.values()), 10),
        budget=(snapshot or {}).get("budget"),
        targets=targets,
        comparison=(src.summary or {}).get("comparison") or (manifest and manifest.comparison),
    )


def _targets(
    manifest: RunManifest | None,
    summary: dict[str, Any] | None,
    snapshot: dict[str, Any] | None,
    *,
    terminal: bool,
) -> dict[str, TargetStatus]:
    live = (snapshot or {}).get("targets", {})
    metrics = (summary or {}).get("targets", {})
    names = list(manifest.targets) if manifest else list(live)
    out: dict[str, TargetStatus] = {}
    for name in names:
        progress = live.get(name, {})
        target = TargetStatus(
            done=progress.get("done", 0),
            total=progress.get("total"),
            errors=progress.get("errors", 0),
            cached=progress.get("cached", 0),
            input_tokens=progress.get("input_tokens", 0),
            output_tokens=progress.get("output_tokens", 0),
            cost_usd=progress.get("cost_usd", 0.0),
        )
        if terminal and manifest is not None:
            # The committed rows are the truth once a run has ended; in-flight work is lost.
            target.done = manifest.rows_committed(name)
            found = metrics.get(name)
            if found:
                target.metrics = found
                target.errors = found.get("errors", target.errors)
                target.cached = found.get("cache_hits", target.cached)
                target.input_tokens = found.get("input_tokens", target.input_tokens)
                target.output_tokens = found.get("output_tokens", target.output_tokens)
                target.cost_usd = found.get("cost_usd", 0.0) + found.get("judge_cost_usd", 0.0)
            if manifest.status == "finished":
                target.total = target.done
        out[name] = target
    return out


def _just_submitted(owner: RunOwner) -> bool:
    try:
        created = datetime.fromisoformat(owner.created_at)
    except ValueError:
        return False
    return (datetime.now(UTC) - created).total_seconds() < LAUNCH_GRACE_S


def _iso(value: datetime) -> str:
    return value.isoformat()


# -- gathering the sources -------------------------------------------------------------------


async def live_snapshot(run_id: str) -> dict[str, Any] | None:
    """The live run's snapshot, None if it is not running (or ended just now)."""
    live = await asyncio.to_thread(get_live_run, run_id)
    if live is None:
        return None
    try:
        return await asyncio.wait_for(_awaitable(live.snapshot()), ACTOR_CALL_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - closed at the run's end, or unreachable: not live
        return None


async def driver_state(run_id: str) -> dict[str, Any] | None:
    """The driver actor's state, None if there is no driver (any more)."""
    actor = await asyncio.to_thread(get_driver, run_id)
    if actor is None:
        return None
    try:
        return await asyncio.wait_for(_awaitable(actor.state.remote()), ACTOR_CALL_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - exited after its linger time
        return None


async def gather_sources(
    ctx: ServiceContext, run_id: str, owner: RunOwner | None = None
) -> RunSources:
    """Read every source of `run_id` (actors first: a run may end between the reads)."""
    snapshot, driver = await asyncio.gather(live_snapshot(run_id), driver_state(run_id))
    manifest = await ctx.call(read_manifest, ctx.store, run_id)
    summary = outcome = None
    if manifest is not None and manifest.is_terminal:
        summary = await ctx.call(read_summary, ctx.store, run_id)
    elif driver is None and snapshot is None and owner is not None:
        outcome = await ctx.call(read_outcome, ctx.store, run_id)
    return RunSources(run_id, manifest, summary, snapshot, driver, owner, outcome)


async def _awaitable(ref: Any) -> Any:
    return await ref
