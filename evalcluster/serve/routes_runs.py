"""``/v1/runs``: start runs of stored suites, list them, follow them, page results, cancel."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query

from evalcluster.actors.run import get_live_run
from evalcluster.jobs.driver import new_run_id
from evalcluster.jobs.options import RunOptions
from evalcluster.jobs.prepare import prepare_suite_text
from evalcluster.serve.auth import require_api_key
from evalcluster.serve.context import ServiceContext, get_context
from evalcluster.serve.errors import ApiError
from evalcluster.serve.jsonsafe import json_safe
from evalcluster.serve.launcher import driver_run_ids, get_driver, launch_run
from evalcluster.serve.runstatus import (
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
    RunStatus,
)
from evalcluster.spec.loader import LoadedSuite
from evalcluster.store.lake import list_run_ids, read_results
from evalcluster.store.layout import check_partition_value
from evalcluster.store.manifest import read_manifest

router = APIRouter(
    prefix="/v1/runs",
    tags=["runs"],
    dependencies=[Depends(require_api_key)],
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}},
)
_NOT_FOUND = {404: {"model": ErrorBody}}


async def known_run(ctx: ServiceContext, run_id: str) -> RunSources:
    """Every source of `run_id`; 404 when none knows it."""
    if not is_valid_run_id(run_id):
        raise ApiError(404, f"no run {run_id!r}")
    sources = await gather_sources(ctx, run_id)
    if not sources.known:
        raise ApiError(404, f"no run {run_id!r}")
    return sources


# -- starting ----------------------------------------------------------------------------------


def _load_stored(ctx: ServiceContext, name: str, version: str | None) -> LoadedSuite:
    stored = ctx.suites.get(name, version)
    suite = prepare_suite_text(
        stored.yaml_text,
        location=f"suites/{name}/{stored.version}.yaml",
        base_dir=Path(ctx.settings.base_dir),
    )
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
    responses={**_NOT_FOUND, 409: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
async def start_run(body: RunRequest, ctx: ServiceContext = Depends(get_context)) -> RunAccepted:
    """Starts a detached driver for the run and answers at once with its id."""
    suite = await ctx.call(_load_stored, ctx, body.suite, body.version)
    _check_targets(suite, body.targets)
    run_id = _new_run_id(suite.spec.name)
    options = RunOptions(
        run_id=run_id,
        targets=body.targets,
        store=ctx.settings.store_uri,
        endpoint_url=ctx.settings.endpoint_url,
        tracking_uri=ctx.settings.tracking_uri,
        max_samples=body.max_samples,
        budget_usd=body.budget_usd,
        no_cache=body.no_cache,
        priority=body.priority,
    )
    await ctx.call(launch_run, run_id, suite, options, ctx.settings.driver_linger_s)
    base = f"/v1/runs/{run_id}"
    return RunAccepted(
        run_id=run_id,
        status="pending",
        suite=suite.spec.name,
        version=suite.version,
        links={
            "self": base,
            "events": f"{base}/events",
            "results": f"{base}/results",
            "cancel": f"{base}/cancel",
        },
    )


# -- reading -----------------------------------------------------------------------------------


def _list_manifests(ctx: ServiceContext) -> list[RunListItem]:
    items = []
    for run_id in list_run_ids(ctx.store):
        if not is_valid_run_id(run_id):
            continue  # not written by us
        manifest = read_manifest(ctx.store, run_id)
        if manifest is None:
            continue
        items.append(
            RunListItem(
                run_id=run_id,
                suite=manifest.suite,
                suite_version=manifest.suite_version,
                status=manifest.status,
                targets=manifest.targets,
                created_at=manifest.created_at.isoformat(),
                updated_at=manifest.updated_at.isoformat(),
            )
        )
    return items


@router.get("", response_model=RunList, summary="List runs, newest first")
async def list_runs(
    suite: str | None = Query(None, description="Only runs of this suite."),
    status: str | None = Query(None, description="Only runs with this status."),
    offset: int = Query(0, ge=0, le=10**9),
    limit: int = Query(100, ge=1, le=1000),
    ctx: ServiceContext = Depends(get_context),
) -> RunList:
    """Runs in the store (from their manifests) plus runs still starting (no manifest yet)."""
    items = await ctx.call(_list_manifests, ctx)
    listed = {i.run_id for i in items}
    for run_id in await ctx.call(driver_run_ids):
        if run_id not in listed:
            items.append(
                RunListItem(
                    run_id=run_id,
                    suite="",
                    suite_version="",
                    status="pending",
                    targets=[],
                    created_at="",
                    updated_at="",
                )
            )
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
    response_model=RunStatus,
    summary="A run's status, progress and metrics",
    responses=_NOT_FOUND,
)
async def get_run(run_id: str, ctx: ServiceContext = Depends(get_context)) -> RunStatus:
    return compose_status(await known_run(ctx, run_id))


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
    ctx: ServiceContext = Depends(get_context),
) -> ResultsPage:
    """Rows in a stable order (target, shard, row): committed shards only, so a page of a
    running run can grow at its end but never changes in front of it."""
    if not is_valid_run_id(run_id):
        raise ApiError(404, f"no run {run_id!r}")
    manifest = await ctx.call(read_manifest, ctx.store, run_id)
    if target is not None:
        try:
            check_partition_value("target", target)
        except Exception:  # noqa: BLE001 - StoreError: no target can have this name
            raise ApiError(404, f"run {run_id!r} has no target {target!r}") from None
        if manifest is not None and target not in manifest.targets:
            raise ApiError(404, f"run {run_id!r} has no target {target!r}")
    if manifest is None and await driver_state(run_id) is not None:
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


# -- cancelling --------------------------------------------------------------------------------


@router.post(
    "/{run_id}/cancel",
    status_code=202,
    response_model=CancelAccepted,
    summary="Ask a run to stop",
    responses={**_NOT_FOUND, 409: {"model": ErrorBody, "description": "The run has ended."}},
)
async def cancel_run(run_id: str, ctx: ServiceContext = Depends(get_context)) -> CancelAccepted:
    """Shards in flight finish and are kept; nothing more is dispatched; the run ends
    ``killed`` and can be resumed from the command line."""
    sources = await known_run(ctx, run_id)
    status = compose_status(sources)
    if is_terminal(status.status) or not status.live:
        raise ApiError(409, f"run {run_id!r} is not running (status {status.status})")
    sent = await asyncio.gather(_cancel_live_run(run_id), _cancel_driver(run_id))
    if not any(sent):
        raise ApiError(409, f"run {run_id!r} ended before the cancel reached it")
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
