"""The workbench: its static page at ``/ui`` and the JSON routes it reads at ``/v1/ui/...``.

The page (`evalcluster.ui`'s ``static/`` files) holds no data and needs no key to load; every
thing it shows comes from the authenticated JSON routes below, with the same tenants, roles and
404-for-another-tenant's-run as ``/v1/runs``. The page keeps the key in ``sessionStorage`` and
sends it as ``Authorization: Bearer``: no cookie, so no request can be forged from another site.
Its responses carry a strict Content-Security-Policy (scripts from this origin only, no inline
script, no plugins, not framable), on top of the page writing untrusted text as text only.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import RedirectResponse, Response

from evalcluster.serve.audit import record
from evalcluster.serve.auth import Principal, require_principal, require_role
from evalcluster.serve.context import ServiceContext, get_context
from evalcluster.serve.errors import ApiError
from evalcluster.serve.routes_runs import visible_owner
from evalcluster.serve.runstatus import driver_state
from evalcluster.serve.schemas import NAME_PATTERN, ErrorBody
from evalcluster.store.manifest import RunManifest, read_manifest
from evalcluster.ui.compare import compare_targets
from evalcluster.ui.labels import (
    Label,
    LabelRequest,
    append_label,
    human_summary,
    latest_verdicts,
    new_label,
    read_labels,
)
from evalcluster.ui.queries import (
    RunTable,
    SampleFilter,
    find_row,
    load_run,
    row_scores,
    run_summary,
    sample_detail,
    sample_page,
)
from evalcluster.ui.review import review_queue
from evalcluster.ui.summary_cache import SummaryCache, summary_key

CSP = (
    "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'; img-src 'self' data:"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
STATIC_FILES = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "index.html": "text/html; charset=utf-8",
}
MAX_PAGE = 500
INVALID: dict[int | str, dict[str, Any]] = {422: {"model": ErrorBody}}  # a route's own 422
MAX_TEXT = 200
SUMMARIES = SummaryCache()  # per replica

# -- the page ------------------------------------------------------------------------------------

page_router = APIRouter(include_in_schema=False)


@cache
def _static(name: str) -> bytes:
    return resources.files("evalcluster.ui").joinpath("static", name).read_bytes()


def _file_response(name: str) -> Response:
    return Response(_static(name), media_type=STATIC_FILES[name], headers=SECURITY_HEADERS)


@page_router.get("/ui")
async def ui_page() -> Response:
    return _file_response("index.html")


@page_router.get("/ui/")
async def ui_slash() -> Response:
    return RedirectResponse("/ui", status_code=308)


@page_router.get("/ui/static/{name}")
async def ui_static(name: str) -> Response:
    if name not in STATIC_FILES:  # a fixed list: no path ever reaches the file system
        raise ApiError(404, "no such file")
    return _file_response(name)


# -- the data --------------------------------------------------------------------------------------

router = APIRouter(
    prefix="/v1/ui",
    tags=["workbench"],
    dependencies=[Depends(require_principal)],
    responses={
        401: {"model": ErrorBody},
        403: {"model": ErrorBody},
        404: {"model": ErrorBody},
    },
)


async def _visible_run(
    ctx: ServiceContext, principal: Principal, run_id: str
) -> RunManifest | None:
    """The manifest of a run the caller may see (None while it starts); 404 otherwise."""
    owner = await visible_owner(ctx, principal, run_id)
    manifest = await ctx.call(read_manifest, ctx.store, run_id)
    if manifest is None and owner is None and await driver_state(run_id) is None:
        raise ApiError(404, f"no run {run_id!r}")
    return manifest


async def _run_table(
    ctx: ServiceContext, principal: Principal, run_id: str
) -> tuple[RunTable, RunManifest | None]:
    manifest = await _visible_run(ctx, principal, run_id)
    return await ctx.call(load_run, ctx.store, run_id), manifest


def _group_by(manifest: RunManifest | None) -> list[str]:
    groups = (manifest.spec.get("group_by") if manifest else None) or []
    return [g for g in groups if isinstance(g, str)]


def _check_target(run: RunTable, target: str | None, field: str = "target") -> None:
    if target is not None and target not in run.targets:
        raise ApiError(404, f"run {run.run_id!r} has no rows of target {target!r}", field=field)


def _no_row(run_id: str, target: str, sample_id: str, epoch: int) -> ApiError:
    return ApiError(404, f"run {run_id!r} has no row {target}/{sample_id}/{epoch}")


def _check_scorer(run: RunTable, scorer: str | None, field: str = "scorer") -> None:
    if scorer is not None and scorer not in run.scorers:
        known = ", ".join(run.scorers) or "none"
        raise ApiError(422, f"unknown scorer {scorer!r} (this run has: {known})", field=field)


def _mlflow_link(ctx: ServiceContext, manifest: RunManifest | None) -> dict[str, Any] | None:
    if manifest is None or not manifest.mlflow_run_id:
        return None
    uri = ctx.settings.tracking_uri or ""
    # Only a tracking server the operator configured over HTTP gives a link a browser can open.
    url = None
    if uri.startswith(("http://", "https://")):
        url = f"{uri.rstrip('/')}/#/runs/{manifest.mlflow_run_id}"
    return {"run_id": manifest.mlflow_run_id, "url": url}


def _summary(run: RunTable, manifest: RunManifest | None, labels: list[Label]) -> dict[str, Any]:
    out = run_summary(run, _group_by(manifest))
    for target, entry in out["targets"].items():
        for scorer, stats in entry["scorers"].items():
            verdicts = latest_verdicts(labels, target, scorer)
            if verdicts:
                stats["human"] = human_summary(row_scores(run, target, scorer), verdicts)
    return out


def _comparison(manifest: RunManifest | None) -> dict[str, Any] | None:
    """A `compare:` run's sequential comparison with its path of looks (the sequence's
    internal state left out: the page has no use for it)."""
    if manifest is None or not manifest.comparison:
        return None
    return {k: v for k, v in manifest.comparison.items() if k != "state"}


@router.get("/me", summary="Who the key belongs to")
async def get_me(principal: Principal = Depends(require_principal)) -> dict[str, Any]:
    """The caller's tenant, role and key id (a digest prefix): the page's sign-in check."""
    return {"tenant": principal.tenant, "role": principal.role, "key_id": principal.key_id}


@router.get("/runs/{run_id}/summary", summary="A run's summary for the workbench")
async def get_summary(
    run_id: str,
    principal: Principal = Depends(require_principal),
    ctx: ServiceContext = Depends(get_context),
) -> dict[str, Any]:
    """Per target: rows, samples, errors by kind, cache hits, tokens, cost, latency
    percentiles and histograms; per scorer the mean with its interval, per group, and what
    the run's review labels say (corrected mean, agreement, prediction-powered estimate);
    for a suite with `compare:`, its sequential comparison (with the path of its looks).
    Computed once per set of committed shards and labels, then served from a cache."""
    run, manifest = await _run_table(ctx, principal, run_id)
    labels = await ctx.call(read_labels, ctx.store, run_id)
    group_by = _group_by(manifest)
    key = summary_key(ctx.store.full_uri(), run_id, run.shard_keys, len(labels), tuple(group_by))
    out = await ctx.call(SUMMARIES.get, key, lambda: _summary(run, manifest, labels))
    out.update(
        suite=manifest.suite if manifest else None,
        status=manifest.status if manifest else "pending",
        group_by=group_by,
        scorers=list(run.scorers),
        labels=len(labels),
        mlflow=_mlflow_link(ctx, manifest),
        comparison=_comparison(manifest),
    )
    return out


def _parse_group(group: str | None) -> tuple[str, str] | None:
    if group is None:
        return None
    column, sep, value = group.partition(":")
    if not sep or not column:
        raise ApiError(422, "group must be 'column:value'", field="group")
    return column, value


@router.get(
    "/runs/{run_id}/samples",
    summary="A filtered page of a run's rows",
    responses=INVALID,
)
async def get_samples(
    run_id: str,
    target: str | None = Query(None, max_length=128, description="Only this target's rows."),
    scorer: str | None = Query(None, max_length=128, description="The score the filters use."),
    outcome: Literal["right", "wrong", "error", "scored", "unscored"] | None = Query(None),
    min_score: float | None = Query(None, allow_inf_nan=False),
    max_score: float | None = Query(None, allow_inf_nan=False),
    error_kind: str | None = Query(None, max_length=128, description="'any' for every error."),
    group: str | None = Query(None, max_length=300, description="'column:value' of metadata."),
    q: str | None = Query(None, max_length=MAX_TEXT, description="Text in id, prompt, output."),
    offset: int = Query(0, ge=0, le=10**9),
    limit: int = Query(50, ge=1, le=MAX_PAGE),
    principal: Principal = Depends(require_principal),
    ctx: ServiceContext = Depends(get_context),
) -> dict[str, Any]:
    """Rows in the run's order (target, shard, row) that match every filter given; ``total``
    counts them all. Outputs are cut to a preview; the sample route gives the whole row."""
    run, manifest = await _run_table(ctx, principal, run_id)
    _check_scorer(run, scorer)
    f = SampleFilter(
        target=target,
        scorer=scorer,
        outcome=outcome,
        min_score=min_score,
        max_score=max_score,
        error_kind=error_kind,
        group=_parse_group(group),
        text=q or None,
    )
    page = await ctx.call(sample_page, run, f, offset, limit)
    groups = {c: await ctx.call(run.group_names, c) for c in _group_by(manifest)}
    return {
        "run_id": run_id,
        "total": page.total,
        "offset": page.offset,
        "limit": page.limit,
        "scorers": page.scorers,
        "targets": page.targets,
        "groups": groups,
        "rows": page.rows,
    }


@router.get("/runs/{run_id}/sample", summary="One row of a run, whole")
async def get_sample(
    run_id: str,
    target: str = Query(max_length=128),
    sample_id: str = Query(max_length=1024),
    epoch: int = Query(0, ge=0, le=1_000_000),
    principal: Principal = Depends(require_principal),
    ctx: ServiceContext = Depends(get_context),
) -> dict[str, Any]:
    """Prompt, output, reference, scores, the judge's verdicts, the provider that served it,
    attempts, latency, cost and error, with the row's review labels (oldest first)."""
    run, _ = await _run_table(ctx, principal, run_id)
    detail = await ctx.call(sample_detail, run, target, sample_id, epoch)
    if detail is None:
        raise _no_row(run_id, target, sample_id, epoch)
    labels = await ctx.call(read_labels, ctx.store, run_id)
    detail["labels"] = [
        lab.model_dump()
        for lab in labels
        if (lab.target, lab.sample_id, lab.epoch) == (target, sample_id, epoch)
    ]
    return detail


@router.get(
    "/runs/{run_id}/review",
    summary="Rows to label next",
    responses=INVALID,
)
async def get_review(
    run_id: str,
    target: str = Query(max_length=128),
    scorer: str = Query(max_length=128),
    mode: Literal["least_confident", "disagreement", "random"] = Query("least_confident"),
    other: str | None = Query(None, max_length=128, description="disagreement: the other scorer."),
    limit: int = Query(20, ge=1, le=MAX_PAGE),
    seed: int = Query(0, ge=0, le=2**31),
    principal: Principal = Depends(require_principal),
    ctx: ServiceContext = Depends(get_context),
) -> dict[str, Any]:
    """Unlabelled rows of `target` for `scorer`: the least confident, those where two scorers
    disagree, or a seeded random sample."""
    run, _ = await _run_table(ctx, principal, run_id)
    _check_target(run, target)
    _check_scorer(run, scorer)
    _check_scorer(run, other, "other")
    labels = await ctx.call(read_labels, ctx.store, run_id)
    done = set(latest_verdicts(labels, target, scorer))
    queue = await ctx.call(
        review_queue, run, target, scorer, mode, labelled=done, other=other, limit=limit, seed=seed
    )
    return {"run_id": run_id, "target": target, "scorer": scorer, "mode": mode, **queue}


@router.get("/runs/{run_id}/labels", summary="A run's review labels, oldest first")
async def get_labels(
    run_id: str,
    principal: Principal = Depends(require_principal),
    ctx: ServiceContext = Depends(get_context),
) -> dict[str, Any]:
    await _visible_run(ctx, principal, run_id)
    labels = await ctx.call(read_labels, ctx.store, run_id)
    return {"run_id": run_id, "labels": [lab.model_dump() for lab in labels]}


@router.post(
    "/runs/{run_id}/labels",
    status_code=201,
    response_model=Label,
    summary="Record a human verdict on one row",
    responses=INVALID,
)
async def post_label(
    run_id: str,
    body: LabelRequest,
    principal: Principal = Depends(require_role("runner")),
    ctx: ServiceContext = Depends(get_context),
) -> Label:
    """Appends the label to the lake (never overwriting one) with the tenant, key id and time;
    the newest label of a row is the one summaries use."""
    run, _ = await _run_table(ctx, principal, run_id)
    _check_scorer(run, body.scorer)
    if find_row(run, body.target, body.sample_id, body.epoch) is None:
        raise _no_row(run_id, body.target, body.sample_id, body.epoch)
    label = new_label(body, run_id, principal.tenant, principal.key_id)
    await ctx.call(append_label, ctx.store, label)
    await record(ctx, principal, "label.add", run_id=run_id, label_id=label.label_id)
    _log_to_mlflow(ctx, label)
    return label


def _log_to_mlflow(ctx: ServiceContext, label: Label) -> None:
    """Best effort, in the background: the label as a human assessment on the sample's trace."""
    if not ctx.settings.tracking_uri:
        return
    from evalcluster.ui.mlflow_labels import log_label_soon

    log_label_soon(ctx.settings.tracking_uri, label)


@router.get(
    "/compare",
    summary="Two targets, sample by sample",
    responses=INVALID,
)
async def get_compare(
    run_a: str = Query(max_length=128),
    target_a: str = Query(max_length=128),
    run_b: str = Query(max_length=128),
    target_b: str = Query(max_length=128),
    scorer: str = Query(max_length=128, pattern=NAME_PATTERN),
    principal: Principal = Depends(require_principal),
    ctx: ServiceContext = Depends(get_context),
) -> dict[str, Any]:
    """B minus A on the samples both scored: the paired difference with its interval and
    verdict, per group, the flipped samples and the interval as samples accrued."""
    a, manifest_a = await _run_table(ctx, principal, run_a)
    b, _ = await _run_table(ctx, principal, run_b)
    _check_target(a, target_a, "target_a")
    _check_target(b, target_b, "target_b")
    _check_scorer(a, scorer)
    _check_scorer(b, scorer)
    cluster = manifest_a.spec.get("cluster") if manifest_a else None
    return await ctx.call(
        compare_targets,
        a,
        target_a,
        b,
        target_b,
        scorer,
        _group_by(manifest_a),
        cluster if isinstance(cluster, str) else None,
    )
