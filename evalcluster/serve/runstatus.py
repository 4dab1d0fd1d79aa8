"""A run's status, from whichever source knows best.

While a run goes, the live-run registry (actor ``runs``) holds its progress; once it ends the
driver closes it there and the manifest (status, committed rows) and ``_summary.json`` (metrics)
are the truth. Before the manifest exists only the run's driver actor knows the run. Precedence:
a terminal manifest, then the live run, then the driver's outcome, then a manifest left
non-terminal by a driver that is gone.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from evalcluster.actors.run import RunSnapshot, get_live_run
from evalcluster.runstate import RunState, is_terminal
from evalcluster.serve.context import ServiceContext
from evalcluster.serve.launcher import DriverOutcome, DriverState, get_driver, read_outcome
from evalcluster.serve.owners import RunOwner
from evalcluster.serve.schemas import BatchStatus, RunStatusResponse, TargetStatus
from evalcluster.store.layout import is_valid_run_id
from evalcluster.store.manifest import RunManifest, read_manifest, read_summary

__all__ = [
    "INTERRUPTED_STATUS",
    "RunSources",
    "compose_status",
    "driver_state",
    "gather_sources",
    "is_terminal",  # re-exported from evalcluster/runstate.py
    "is_valid_run_id",  # re-exported from evalcluster/store/layout.py
    "live_snapshot",
]

# A run whose driver is gone before it ended: composed here, never stored (not a RunState).
INTERRUPTED_STATUS = "interrupted"
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
    snapshot: RunSnapshot | None = None  # from the live-run registry
    driver: DriverState | None = None  # RunDriver.state()
    owner: RunOwner | None = None  # runs started over HTTP
    outcome: DriverOutcome | None = None  # what an exited driver left (`_outcome.json`)

    @property
    def known(self) -> bool:
        parts = (self.manifest, self.snapshot, self.driver, self.owner)
        return any(x is not None for x in parts)


def compose_status(src: RunSources) -> RunStatusResponse:
    """The run's status from its sources (pure: no I/O)."""
    manifest, driver = src.manifest, src.driver
    snapshot = src.snapshot or (driver.snapshot if driver is not None else None)
    live = src.snapshot is not None or (driver is not None and driver.phase != "ended")
    message: str | None = None
    if manifest is not None and manifest.is_terminal:
        status, message, live = manifest.status, manifest.error, False
        if message is None and driver is not None and driver.status == RunState.FAILED:
            message = driver.message  # it failed after recording the status (the summary)
    elif src.snapshot is not None:
        status, message = src.snapshot.status, src.snapshot.message
    elif driver is not None and driver.phase == "ended":
        status, message = driver.status, driver.message
    elif driver is not None:
        starting = driver.phase == "starting" or manifest is None
        status = RunState.PENDING if starting else RunState.RUNNING
    elif src.outcome is not None and is_terminal(src.outcome.status):
        status, message = src.outcome.status, src.outcome.message
    elif src.owner is not None and manifest is None and _just_submitted(src.owner):
        status = RunState.PENDING  # its driver is being created
    elif src.owner is not None:
        status, message = INTERRUPTED_STATUS, INTERRUPTED.format(run_id=src.run_id)
    elif manifest is not None:
        status, message = manifest.status, ORPHANED.format(run_id=src.run_id)
    else:
        status = RunState.PENDING
    ended = is_terminal(status) or status == INTERRUPTED_STATUS
    targets = _targets(manifest, src.summary, snapshot, terminal=ended)
    owner_suite = src.owner.suite if src.owner else None
    owner_version = src.owner.suite_version if src.owner else None
    totals = [t.total for t in targets.values()]
    return RunStatusResponse(
        run_id=src.run_id,
        suite=manifest.suite if manifest else (snapshot.suite if snapshot else None) or owner_suite,
        suite_version=manifest.suite_version if manifest else owner_version,
        status=str(status),
        message=message,
        live=live,
        cancel_requested=bool(
            (snapshot is not None and snapshot.cancel_requested)
            or (driver is not None and driver.cancel_requested)
        ),
        created_at=_iso(manifest.created_at) if manifest else None,
        updated_at=_iso(manifest.updated_at) if manifest else None,
        done=sum(t.done for t in targets.values()),
        total=None if None in totals or not totals else sum(totals),  # type: ignore[arg-type]
        errors=sum(t.errors for t in targets.values()),
        cost_usd=round(sum(t.cost_usd for t in targets.values()), 10),
        budget=asdict(snapshot.budget) if snapshot is not None else None,
        targets=targets,
        comparison=(src.summary or {}).get("comparison") or (manifest and manifest.comparison),
        batches=_batches(snapshot),
    )


def _batches(snapshot: RunSnapshot | None) -> BatchStatus | None:
    if snapshot is None or snapshot.batches is None:
        return None
    return BatchStatus(**snapshot.batches.to_dict())


def _targets(
    manifest: RunManifest | None,
    summary: dict[str, Any] | None,
    snapshot: RunSnapshot | None,
    *,
    terminal: bool,
) -> dict[str, TargetStatus]:
    live = snapshot.targets if snapshot is not None else {}
    metrics = (summary or {}).get("targets", {})
    names = list(manifest.targets) if manifest else list(live)
    out: dict[str, TargetStatus] = {}
    for name in names:
        progress = live.get(name)
        target = (
            TargetStatus()
            if progress is None
            else TargetStatus(
                done=progress.done,
                total=progress.total,
                errors=progress.errors,
                cached=progress.cached,
                input_tokens=progress.input_tokens,
                output_tokens=progress.output_tokens,
                cost_usd=progress.cost_usd,
            )
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
            if manifest.status == RunState.FINISHED:
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


async def live_snapshot(run_id: str) -> RunSnapshot | None:
    """The live run's snapshot, None if it is not running (or ended just now)."""
    live = await asyncio.to_thread(get_live_run, run_id)
    if live is None:
        return None
    try:
        return await asyncio.wait_for(_awaitable(live.snapshot()), ACTOR_CALL_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - closed at the run's end, or unreachable: not live
        return None


async def driver_state(run_id: str) -> DriverState | None:
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
