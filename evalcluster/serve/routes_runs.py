"""``/v1/runs``: start runs of stored suites, list them, follow them, page results, cancel.

Every run started here has an owner record (`evalcluster.serve.owners`); a caller sees its own
tenant's runs, an admin every run, and anything else answers 404 as a run that does not exist.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Query

from evalcluster.actors.run import get_live_run
from evalcluster.jobs.driver import new_run_id
from evalcluster.jobs.options import RunOptions
from evalcluster.runstate import RunState
from evalcluster.serve.audit import record
from evalcluster.serve.auth import Principal, require_principal, require_role
from evalcluster.serve.context import ServiceContext, get_context
from evalcluster.serve.datasets import now_iso
from evalcluster.serve.errors import ApiError
from evalcluster.serve.jsonsafe import json_safe
from evalcluster.serve.launcher import driver_run_ids, get_driver, launch_run
from evalcluster.serve.owners import RunOwner, read_owner, write_owner
from evalcluster.serve.quotas import admit, check_active_runs, mark_run, tenant_run_ids
from evalcluster.serve.routes_suites import load_submitted_suite
from evalcluster.serve.runstatus import (
    INTERRUPTED_STATUS,
    RunSources,
    compose_status,
    driver_state,
    gather_sources,
    is_terminal,
    is_valid_run_id,
)
from evalcluster.serve.schemas import (
    MAX_RESULTS_PAGE,
    CancelAccepted,
    ErrorBody,
    ResultsPage,
    RunAccepted,
    RunList,
    RunListItem,
    RunRequest,
    RunStatusResponse,
)
from evalcluster.store.lake import list_run_ids, read_results
from evalcluster.store.layout import check_partition_value
from evalcluster.store.manifest import read_manifest
from evalcluster.suite.loader import LoadedSuite

router = APIRouter(
    prefix="/v1/runs",
    tags=["runs"],
    dependencies=[Depends(require_principal)],
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}},
)
_NOT_FOUND = {404: {"model": ErrorBody}}


async def visible_owner(ctx: ServiceContext, principal: Principal, run_id: str) -> RunOwner | None:
    """The owner record of a run `principal` may see (None: a CLI run, admins only); 404 for
    a run that does not exist or belongs to another tenant (the two look the same)."""
    if not is_valid_run_id(run_id):
        raise ApiError(404, f"no run {run_id!r}")
    owner = await ctx.call(read_owner, ctx.store, run_id)
    if not principal.sees(owner.tenant if owner else None):
        raise ApiError(404, f"no run {run_id!r}")
    return owner


async def known_run(ctx: ServiceContext, principal: Principal, run_id: str) -> RunSources:
    """Every source of `run_id`; 404 when none knows it or the caller may not see it."""
    owner = await visible_owner(ctx, principal, run_id)
    sources = await gather_sources(ctx, run_id, owner)
    if not sources.known:
        raise ApiError(404, f"no run {run_id!r}")
    return sources


# -- starting ----------------------------------------------------------------------------------


def _load_stored(ctx: ServiceContext, tenant: str, name: str, version: str | None) -> LoadedSuite:
    stored = ctx.suites(tenant).get(name, version)
    suite = load_submitted_suite(stored.yaml_text, ctx.rules(tenant))
    if suite.version != stored.version:
        raise ApiError(
            409,
            f"suite {name!r} version {stored.version} no longer resolves to itself (its dataset "
            f"changed; it is now {suite.version}): create the suite again to store the new one",
        )
    return suite


def _check_targets(suite: LoadedSuite, names: list[str]) -> None:
    known = {t.name for t in suite.spec.targets}
    for i, name in enumerate(names):
        if name not in known:
            raise ApiError(
                422,
                f"unknown target {name!r} (suite has: {', '.join(sorted(known))})",
                code="invalid_request",
                field=f"targets[{i}]",
            )


def _new_run_id(suite_name: str) -> str:
    run_id = new_run_id(suite_name)
    # A suite named "123" could give an id that readers take for a number.
    return run_id if is_valid_run_id(run_id) else f"run-{run_id}"


@router.post(
    "",
    status_code=202,
    response_model=RunAccepted,
    summary="Start a run of a stored suite",
    responses={
        **_NOT_FOUND,
        409: {"model": ErrorBody},
        422: {"model": ErrorBody},
        429: {"model": ErrorBody, "description": "A quota of the tenant is used up."},
    },
)
async def start_run(
    body: RunRequest,
    principal: Principal = Depends(require_role("runner")),
    ctx: ServiceContext = Depends(get_context),
) -> RunAccepted:
    """Starts a detached driver for the run and answers at once with its id."""
    suite = await ctx.call(_load_stored, ctx, principal.tenant, body.suite, body.version)
    _check_targets(suite, body.targets)
    async with ctx.submit_lock(principal.tenant):
        limits = await admit(ctx, principal, body, suite.spec.budget_usd)
        run_id = _new_run_id(suite.spec.name)
        owner = RunOwner(
            run_id=run_id,
            tenant=principal.tenant,
            key_id=principal.key_id,
            suite=suite.spec.name,
            suite_version=suite.version,
            created_at=now_iso(),
            targets=body.targets,
            max_samples=limits.max_samples,
            budget_usd=limits.budget_usd,
            no_cache=body.no_cache,
            priority=body.priority,
        )
        await ctx.call(write_owner, ctx.store, owner)
        await ctx.call(mark_run, ctx.store, principal.tenant, run_id, owner.created_at[:10])
        await ctx.call(
            launch_run, run_id, suite, run_options(ctx, owner), ctx.settings.driver_linger_s
        )
    await record(ctx, principal, "run.start", run_id=run_id, suite=suite.spec.name,
                 version=suite.version, budget_usd=limits.budget_usd)  # fmt: skip
    return accepted(run_id, suite.spec.name, suite.version)


def accepted(run_id: str, suite: str, version: str) -> RunAccepted:
    """The answer to a start or a resume: the run's id and where to follow it."""
    base = f"/v1/runs/{run_id}"
    links = {name: f"{base}/{name}" for name in ("events", "results", "cancel", "resume")}
    return RunAccepted(
        run_id=run_id,
        status=RunState.PENDING,
        suite=suite,
        version=version,
        links={"self": base, **links},
    )


def run_options(ctx: ServiceContext, owner: RunOwner) -> RunOptions:
    """The driver's options for the run `owner` records (a start or a resume)."""
    return RunOptions(
        run_id=owner.run_id,
        targets=owner.targets,
        store=ctx.settings.store_uri,
        endpoint_url=ctx.settings.endpoint_url,
        tracking_uri=ctx.settings.tracking_uri,
        max_samples=owner.max_samples,
        budget_usd=owner.budget_usd,
        no_cache=owner.no_cache,
        priority=owner.priority,
    )


# -- reading -----------------------------------------------------------------------------------


def _list_items(ctx: ServiceContext, principal: Principal, live: list[str]) -> list[RunListItem]:
    """The runs `principal` may see: its tenant's (from the submission markers), or every
    run in the store for an admin; runs still starting have no manifest yet."""
    if principal.is_admin:
        run_ids = set(list_run_ids(ctx.store)) | set(live)
    else:
        run_ids = set(tenant_run_ids(ctx.store, principal.tenant))
    items = []
    for run_id in sorted(run_ids):
        if not is_valid_run_id(run_id):
            continue  # not written by us
        owner = read_owner(ctx.store, run_id)
        if not principal.sees(owner.tenant if owner else None):
            continue
        manifest = read_manifest(ctx.store, run_id)
        if manifest is None and owner is None:
            if run_id in live:
                items.append(RunListItem(run_id=run_id, status=RunState.PENDING))
            continue
        if manifest is None:
            status = RunState.PENDING if run_id in live else INTERRUPTED_STATUS
        elif not manifest.is_terminal and run_id not in live:
            status = INTERRUPTED_STATUS
        else:
            status = manifest.status
        items.append(
            RunListItem(
                run_id=run_id,
                suite=manifest.suite if manifest else owner.suite,  # type: ignore[union-attr]
                suite_version=manifest.suite_version if manifest else owner.suite_version,  # type: ignore[union-attr]
                status=status,
                targets=manifest.targets if manifest else list(owner.targets),  # type: ignore[union-attr]
                created_at=manifest.created_at.isoformat() if manifest else owner.created_at,  # type: ignore[union-attr]
                updated_at=manifest.updated_at.isoformat() if manifest else "",
                tenant=owner.tenant if owner else None,
            )
        )
    return items


@router.get("", response_model=RunList, summary="List runs, newest first")
async def list_runs(
    suite: str | None = Query(None, description="Only runs of this suite."),
    status: str | None = Query(None, description="Only runs with this status."),
    offset: int = Query(0, ge=0, le=10**9),
    limit: int = Query(100, ge=1, le=1000),
    principal: Principal = Depends(require_principal),
    ctx: ServiceContext = Depends(get_context),
) -> RunList:
    """The caller's tenant's runs (an admin: every run in the store), newest first."""
    live = await ctx.call(driver_run_ids)
    items = await ctx.call(_list_items, ctx, principal, live)
    items = [
        i
        for i in items
        if (suite is None or i.suite == suite) and (status is None or i.status == status)
    ]
    items.sort(key=lambda i: (i.created_at or "9999", i.run_id), reverse=True)
    return RunList(
        runs=items[offset : offset + limit], total=len(items), offset=offset, limit=limit
    )


@router.get(
    "/{run_id}",
    response_model=RunStatusResponse,
    summary="A run's status, progress and metrics",
    responses=_NOT_FOUND,
)
async def get_run(
    run_id: str,
    principal: Principal = Depends(require_principal),
    ctx: ServiceContext = Depends(get_context),
) -> RunStatusResponse:
    return compose_status(await known_run(ctx, principal, run_id))


def _read_page(
    ctx: ServiceContext, run_id: str, target: str | None, offset: int, limit: int
) -> list[dict[str, Any]]:
    table = read_results(ctx.store, run_id, target=target, offset=offset, limit=limit)
    return [json_safe(row) for row in table.to_pylist()]


@router.get(
    "/{run_id}/results",
    response_model=ResultsPage,
    summary="A page of result rows",
    responses=_NOT_FOUND,
)
async def get_results(
    run_id: str,
    target: str | None = Query(None, description="Only this target's rows."),
    offset: int = Query(0, ge=0, le=10**12),
    limit: int = Query(100, ge=1, le=MAX_RESULTS_PAGE),
    principal: Principal = Depends(require_principal),
    ctx: ServiceContext = Depends(get_context),
) -> ResultsPage:
    """Rows in a stable order (target, shard, row): committed shards only, so a page of a
    running run can grow at its end but never changes in front of it."""
    owner = await visible_owner(ctx, principal, run_id)
    manifest = await ctx.call(read_manifest, ctx.store, run_id)
    if manifest is None and owner is None and await driver_state(run_id) is None:
        raise ApiError(404, f"no run {run_id!r}")
    if target is not None:
        try:
            check_partition_value("target", target)
        except Exception:  # noqa: BLE001 - StoreError: no target can have this name
            raise ApiError(404, f"run {run_id!r} has no target {target!r}") from None
        if manifest is not None and target not in manifest.targets:
            raise ApiError(404, f"run {run_id!r} has no target {target!r}")
    if manifest is None:
        rows: list[dict[str, Any]] = []  # still starting: known, but nothing committed yet
    else:
        # One extra row tells whether another page follows.
        rows = await ctx.call(_read_page, ctx, run_id, target, offset, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return ResultsPage(
        run_id=run_id,
        target=target,
        offset=offset,
        limit=limit,
        count=len(rows),
        next_offset=offset + len(rows) if more else None,
        rows=rows,
    )


# -- resuming --------------------------------------------------------------------------------


@router.post(
    "/{run_id}/resume",
    status_code=202,
    response_model=RunAccepted,
    summary="Finish an interrupted, cancelled or failed run",
    responses={
        **_NOT_FOUND,
        409: {"model": ErrorBody, "description": "The run is going, or has finished."},
        429: {"model": ErrorBody, "description": "The tenant has its quota of runs going."},
    },
)
async def resume_run(
    run_id: str,
    principal: Principal = Depends(require_role("runner")),
    ctx: ServiceContext = Depends(get_context),
) -> RunAccepted:
    """Starts a new driver on the same run: committed shards are kept, only what is missing
    is evaluated (exactly once, as `evalcluster run --run-id` does), with the options the
    run was started with."""
    owner = await visible_owner(ctx, principal, run_id)
    if owner is None:
        raise ApiError(
            409, f"run {run_id!r} was started from the command line; resume it there "
            f"(`evalcluster run SUITE.yaml --run-id {run_id}`)",
        )  # fmt: skip
    status = compose_status(await gather_sources(ctx, run_id, owner))
    if status.live or status.status == RunState.PENDING:
        raise ApiError(409, f"run {run_id!r} is {status.status}: nothing to resume yet")
    if status.status == RunState.FINISHED:
        raise ApiError(409, f"run {run_id!r} has finished: nothing is missing")
    suite = await ctx.call(_load_stored, ctx, owner.tenant, owner.suite, owner.suite_version)
    async with ctx.submit_lock(owner.tenant):
        # The owner's quota, also when an admin resumes another tenant's run.
        info = ctx.settings.api_keys.tenant(owner.tenant)
        await check_active_runs(ctx, owner.tenant, info.quotas if info else principal.quotas)
        await ctx.call(
            launch_run, run_id, suite, run_options(ctx, owner), ctx.settings.driver_linger_s
        )
    await record(ctx, principal, "run.resume", run_id=run_id, tenant=owner.tenant)
    return accepted(run_id, owner.suite, owner.suite_version)


# -- cancelling --------------------------------------------------------------------------------


@router.post(
    "/{run_id}/cancel",
    status_code=202,
    response_model=CancelAccepted,
    summary="Ask a run to stop",
    responses={**_NOT_FOUND, 409: {"model": ErrorBody, "description": "The run has ended."}},
)
async def cancel_run(
    run_id: str,
    principal: Principal = Depends(require_role("runner")),
    ctx: ServiceContext = Depends(get_context),
) -> CancelAccepted:
    """Shards in flight finish and are kept; nothing more is dispatched; the run ends
    ``killed`` and can be resumed (``POST /v1/runs/{id}/resume``)."""
    sources = await known_run(ctx, principal, run_id)
    status = compose_status(sources)
    if is_terminal(status.status) or not status.live:
        raise ApiError(409, f"run {run_id!r} is not running (status {status.status})")
    sent = await asyncio.gather(_cancel_live_run(run_id), _cancel_driver(run_id))
    if not any(sent):
        raise ApiError(409, f"run {run_id!r} ended before the cancel reached it")
    await record(ctx, principal, "run.cancel", run_id=run_id)
    return CancelAccepted(run_id=run_id, status=status.status, cancel_requested=True)


async def _cancel_live_run(run_id: str) -> bool:
    live = await asyncio.to_thread(get_live_run, run_id)
    if live is None:
        return False
    try:
        await asyncio.wait_for(_await(live.cancel()), 10)
    except Exception:  # noqa: BLE001 - the run ended meanwhile
        return False
    return True


async def _cancel_driver(run_id: str) -> bool:
    actor = await asyncio.to_thread(get_driver, run_id)
    if actor is None:
        return False
    try:
        return bool(await asyncio.wait_for(_await(actor.cancel.remote()), 10))
    except Exception:  # noqa: BLE001 - the driver exited meanwhile
        return False


async def _await(ref: Any) -> Any:
    return await ref
