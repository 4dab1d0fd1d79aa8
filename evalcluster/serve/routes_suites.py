"""``/v1/suites``: create, list, read and hide immutable, versioned suites, per tenant."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import yaml
from fastapi import APIRouter, Depends, Query, Response

from evalcluster.errors import SpecError
from evalcluster.jobs.prepare import prepare_suite_text
from evalcluster.serve.audit import record
from evalcluster.serve.auth import Principal, require_principal, require_role
from evalcluster.serve.context import ServiceContext, get_context
from evalcluster.serve.errors import ApiError
from evalcluster.serve.schemas import (
    NAME_PATTERN,
    CreateSuiteRequest,
    ErrorBody,
    SuiteCreated,
    SuiteDetail,
    SuiteList,
    SuiteSummary,
)
from evalcluster.store.layout import TENANTS_PREFIX
from evalcluster.store.suites import SuitePut, SuiteRegistry, VersionConflictError
from evalcluster.suite.loader import LoadedSuite
from evalcluster.suite.rules import SubmissionRules

router = APIRouter(
    prefix="/v1/suites",
    tags=["suites"],
    dependencies=[Depends(require_principal)],
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}},
)
_NAME = re.compile(NAME_PATTERN)
SUITE_LOCATION = "suite"


def suite_text(body: CreateSuiteRequest) -> str:
    """The YAML text to store: as sent, or the JSON object written out as YAML."""
    if body.yaml is not None:
        return body.yaml
    return yaml.safe_dump(body.suite, sort_keys=False, allow_unicode=True)


def load_submitted_suite(text: str, rules: SubmissionRules) -> LoadedSuite:
    """Validate a submitted suite as `evalcluster run` would, under the service's rules;
    SpecError (422) names the field and never quotes a server file or path."""
    try:
        return prepare_suite_text(
            text, location=SUITE_LOCATION, base_dir=Path("/nonexistent"), rules=rules
        )
    except (pa.ArrowException, OSError, UnicodeError, RecursionError) as exc:
        # Readers below the loader can still fail on a hostile file; it is the client's input,
        # but the reader's message may quote the file or name a server path: not repeated.
        raise SpecError(
            f"cannot load the suite's dataset ({type(exc).__name__})", location=SUITE_LOCATION
        ) from None


def store_suite(registry: SuiteRegistry, suite: LoadedSuite) -> SuitePut:
    """Store `suite` under its content version; an existing version is returned as it is."""
    try:
        return registry.put(suite.spec.name, suite.text, suite.version)
    except VersionConflictError:
        # Same resolved content written differently (comments, key order): same version.
        return SuitePut(suite.version, created=False)


def check_name(name: str, what: str = "suite") -> str:
    """404 for a name no suite can have (the registry would call it an invalid key)."""
    if not _NAME.match(name):
        raise ApiError(404, f"no {what} {name!r}")
    return name


_TENANT_QUERY = Query(
    None, description="Admins: the tenant whose suites to use (default: the caller's own)."
)


def owner_tenant(principal: Principal, tenant: str | None) -> str:
    """The tenant whose suites a request means: the caller's, or (admins) the one named."""
    if tenant is None or tenant == principal.tenant:
        return principal.tenant
    if not principal.is_admin or not _NAME.match(tenant):
        raise ApiError(404, f"no tenant {tenant!r}")
    return tenant


@router.post(
    "",
    status_code=201,
    response_model=SuiteCreated,
    summary="Create a suite, or a new version of one",
    responses={
        200: {"model": SuiteCreated, "description": "This exact version was already stored."},
        422: {"model": ErrorBody, "description": "Invalid suite; `field` names the problem."},
    },
)
async def create_suite(
    body: CreateSuiteRequest,
    response: Response,
    principal: Principal = Depends(require_role("runner")),
    ctx: ServiceContext = Depends(get_context),
) -> SuiteCreated:
    """Validate the suite (and its dataset), store it under its content hash, in the caller's
    tenant. 201 when the version is new, 200 when the same content was stored before."""
    rules = ctx.rules(principal.tenant)
    suite = await ctx.call(load_submitted_suite, suite_text(body), rules)
    registry = ctx.suites(principal.tenant)
    put = await ctx.call(store_suite, registry, suite)
    versions = await ctx.call(registry.versions, suite.spec.name)
    response.status_code = 201 if put.created else 200
    await record(ctx, principal, "suite.create", suite=suite.spec.name, version=put.version)
    return SuiteCreated(
        name=suite.spec.name, version=put.version, created=put.created, versions=versions
    )


@router.get("", response_model=SuiteList, summary="List the visible suites")
async def list_suites(
    tenant: str | None = _TENANT_QUERY,
    principal: Principal = Depends(require_principal),
    ctx: ServiceContext = Depends(get_context),
) -> SuiteList:
    """The caller's suites; an admin without `tenant` sees every tenant's."""
    if principal.is_admin and tenant is None:
        tenants = await ctx.call(ctx.store.list_dirs, TENANTS_PREFIX)
    else:
        tenants = [owner_tenant(principal, tenant)]
    suites = []
    for name in tenants:
        if not _NAME.match(name):
            continue
        infos = await ctx.call(ctx.suites(name).list)
        suites += [
            SuiteSummary(name=i.name, latest=i.latest, versions=i.versions, tenant=name)
            for i in infos
        ]
    return SuiteList(suites=suites)


@router.get(
    "/{name}",
    response_model=SuiteDetail,
    summary="A suite's latest (or a given) version",
    responses={404: {"model": ErrorBody}},
)
async def get_suite(
    name: str,
    version: str | None = Query(None, description="A stored version; the latest by default."),
    tenant: str | None = _TENANT_QUERY,
    principal: Principal = Depends(require_principal),
    ctx: ServiceContext = Depends(get_context),
) -> SuiteDetail:
    """A hidden suite has no latest version, but its versions stay readable by number."""
    check_name(name)
    if version is not None and not _NAME.match(version):
        raise ApiError(404, f"suite {name!r} has no version {version!r}")
    registry = ctx.suites(owner_tenant(principal, tenant))
    stored = await ctx.call(registry.get, name, version)
    versions = await ctx.call(registry.versions, name)
    hidden = await ctx.call(registry.is_hidden, name)
    return SuiteDetail(
        name=name,
        version=stored.version,
        latest=None if hidden else versions[-1],
        hidden=hidden,
        versions=versions,
        yaml=stored.yaml_text,
    )


@router.delete(
    "/{name}",
    response_model=SuiteDetail,
    summary="Hide a suite name; its versions stay stored",
    responses={404: {"model": ErrorBody}},
)
async def delete_suite(
    name: str,
    tenant: str | None = _TENANT_QUERY,
    principal: Principal = Depends(require_role("runner")),
    ctx: ServiceContext = Depends(get_context),
) -> SuiteDetail:
    """Hides the name from listings and version-less reads; storing it again shows it again."""
    check_name(name)
    owner = owner_tenant(principal, tenant)
    registry = ctx.suites(owner)
    await ctx.call(registry.hide, name)
    versions = await ctx.call(registry.versions, name)
    latest = await ctx.call(registry.get, name, versions[-1])
    await record(ctx, principal, "suite.delete", suite=name, tenant=owner)
    return SuiteDetail(
        name=name,
        version=latest.version,
        latest=None,
        hidden=True,
        versions=versions,
        yaml=latest.yaml_text,
    )
