"""Admitting a run: the tenant's quotas, checked before anything is written or started.

A request over a per-run ceiling (samples, budget, priority) is 422 naming the field: the
client can fix the request. A tenant at its active-run or daily-money ceiling gets 429 with a
message that says which: waiting (or an operator) fixes that. A run without a budget or sample
limit of its own gets the tenant's ceiling as its limit, so no run is ever unbounded when the
operator set a bound.

Daily money counts, for each of the tenant's runs created this UTC day, its cost once it has
ended and its whole budget while it goes (it may still spend it all). A tenant's runs are found
through ``tenants/<tenant>/runs/<yyyy-mm-dd>/<run_id>`` markers written at submission.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from evalcluster.serve.auth import Principal
from evalcluster.serve.config import Quotas
from evalcluster.serve.errors import ApiError
from evalcluster.serve.launcher import driver_run_ids
from evalcluster.serve.owners import read_owner
from evalcluster.store.fs import Store
from evalcluster.store.layout import tenant_prefix
from evalcluster.store.manifest import read_manifest, read_summary

if TYPE_CHECKING:
    from evalcluster.serve.context import ServiceContext
    from evalcluster.serve.schemas import RunRequest


@dataclass(frozen=True)
class RunLimits:
    """What an admitted run may use."""

    max_samples: int | None
    budget_usd: float | None


def runs_marker_prefix(tenant: str, day: str | None = None) -> str:
    base = f"{tenant_prefix(tenant)}runs/"
    return f"{base}{day}/" if day else base


def mark_run(store: Store, tenant: str, run_id: str, day: str) -> None:
    store.put(f"{runs_marker_prefix(tenant, day)}{run_id}", b"")


def tenant_run_ids(store: Store, tenant: str, day: str | None = None) -> list[str]:
    """The ids of `tenant`'s runs (of one UTC day), from the submission markers."""
    prefix = runs_marker_prefix(tenant, day)
    return sorted({key.rpartition("/")[2] for key in store.list(prefix)})


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def committed_today(store: Store, tenant: str, live: set[str]) -> float:
    """Money the tenant's runs of today have spent (ended) or may still spend (going)."""
    total = 0.0
    for run_id in tenant_run_ids(store, tenant, today()):
        owner = read_owner(store, run_id)
        if owner is None:
            continue
        manifest = read_manifest(store, run_id)
        if run_id in live or manifest is None or not manifest.is_terminal:
            total += owner.budget_usd or 0.0  # going, or interrupted and resumable
            continue
        summary = read_summary(store, run_id) or {}
        for target in (summary.get("targets") or {}).values():
            total += float(target.get("cost_usd") or 0.0) + float(
                target.get("judge_cost_usd") or 0.0
            )
    return total


def active_runs(store: Store, tenant: str, live: set[str]) -> int:
    """How many of the tenant's runs have a driver working on them now."""
    mine = 0
    for run_id in live:
        owner = read_owner(store, run_id)
        if owner is not None and owner.tenant == tenant:
            mine += 1
    return mine


async def check_active_runs(ctx: ServiceContext, tenant: str, quotas: Quotas) -> set[str]:
    """429 when `tenant` has its quota of runs going; the live run ids."""
    live = set(await asyncio.to_thread(driver_run_ids))
    limit = quotas.max_active_runs
    if limit is not None:
        going = await ctx.call(active_runs, ctx.store, tenant, live)
        if going >= limit:
            raise ApiError(
                429,
                f"tenant {tenant!r} has {going} runs going, its limit is {limit}: "
                "wait for one to end (or cancel one)",
                headers={"Retry-After": "30"},
            )
    return live


async def admit(
    ctx: ServiceContext, principal: Principal, body: RunRequest, suite_budget: float | None
) -> RunLimits:
    """The limits of a new run of `principal`, or ApiError (422 over a ceiling, 429 at one)."""
    quotas = principal.quotas
    if body.priority > quotas.max_priority:
        raise ApiError(
            422,
            f"priority {body.priority:g} is above this tenant's ceiling {quotas.max_priority:g}",
            field="priority",
        )
    max_samples = body.max_samples
    if quotas.max_samples_per_run is not None:
        if max_samples is not None and max_samples > quotas.max_samples_per_run:
            raise ApiError(
                422,
                f"max_samples {max_samples} is above this tenant's ceiling "
                f"{quotas.max_samples_per_run}",
                field="max_samples",
            )
        max_samples = max_samples or quotas.max_samples_per_run
    budget = body.budget_usd or suite_budget
    ceiling = quotas.max_budget_usd_per_run
    if ceiling is not None:
        if body.budget_usd is not None and body.budget_usd > ceiling:
            raise ApiError(
                422,
                f"budget_usd {body.budget_usd:g} is above this tenant's ceiling {ceiling:g} "
                "per run",
                field="budget_usd",
            )
        budget = min(budget, ceiling) if budget is not None else ceiling
    live = await check_active_runs(ctx, principal.tenant, quotas)
    daily = quotas.max_budget_usd_per_day
    if daily is not None:
        spent = await ctx.call(committed_today, ctx.store, principal.tenant, live)
        left = daily - spent
        if left <= 0 or (body.budget_usd is not None and body.budget_usd > left):
            raise ApiError(
                429,
                f"tenant {principal.tenant!r} has committed ${spent:.4f} of its ${daily:g} a "
                f"day; ${max(left, 0):.4f} is left today",
                headers={"Retry-After": "3600"},
            )
        budget = min(budget, left) if budget is not None else left
    return RunLimits(max_samples, budget)
