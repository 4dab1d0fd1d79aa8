"""``POST /v1/plan``: the answers of `evalcluster plan` over HTTP.

The suite is a stored one of the caller's tenant (``name``, ``version``) or sent inline
(``yaml`` text or a ``suite`` object, loaded under the tenant's submission rules as
``POST /v1/suites`` loads it, and not stored). A ``from_run`` must be a run the caller may see
(`routes_runs.visible_owner`): another tenant's run answers 404, as a run that does not exist.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import Field, field_validator, model_validator

from evalcluster.jobs.plan import PlanRequest, plan_suite
from evalcluster.serve.auth import Principal, require_principal
from evalcluster.serve.context import ServiceContext, get_context
from evalcluster.serve.jsonsafe import json_safe
from evalcluster.serve.routes_runs import _load_stored, visible_owner
from evalcluster.serve.routes_suites import load_submitted_suite, suite_text
from evalcluster.serve.schemas import (
    NAME_PATTERN,
    CreateSuiteRequest,
    ErrorBody,
    shallow_suite,
)
from evalcluster.suite.loader import LoadedSuite

router = APIRouter(
    prefix="/v1/plan",
    tags=["plan"],
    dependencies=[Depends(require_principal)],
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}},
)


class PlanBody(PlanRequest):
    """The suite to plan for (exactly one of ``name``, ``yaml``, ``suite``) and the planning
    parameters of `evalcluster plan` (see `evalcluster.jobs.plan.PlanRequest`)."""

    name: str | None = Field(None, pattern=NAME_PATTERN, description="A stored suite's name.")
    version: str | None = Field(None, pattern=NAME_PATTERN, description="Its version (latest).")
    yaml: str | None = Field(None, max_length=1_000_000, description="An inline suite's text.")
    suite: dict[str, Any] | None = Field(None, description="An inline suite as a JSON object.")
    from_run: str | None = Field(None, pattern=NAME_PATTERN, description="A run to estimate from.")

    @field_validator("suite")
    @classmethod
    def _not_too_deep(cls, suite: dict[str, Any] | None) -> dict[str, Any] | None:
        return shallow_suite(suite)

    @model_validator(mode="after")
    def _one_suite(self) -> PlanBody:
        given = [k for k in ("name", "yaml", "suite") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'name' (a stored suite), 'yaml' or 'suite'")
        if self.version is not None and self.name is None:
            raise ValueError("'version' goes with 'name'")
        return self

    def planning(self) -> PlanRequest:
        fields = PlanRequest.model_fields
        return PlanRequest.model_validate(
            {k: v for k, v in self.model_dump(exclude_unset=True).items() if k in fields}
        )


def _suite(ctx: ServiceContext, tenant: str, body: PlanBody) -> LoadedSuite:
    if body.name is not None:
        return _load_stored(ctx, tenant, body.name, body.version)
    text = suite_text(CreateSuiteRequest(yaml=body.yaml, suite=body.suite))
    return load_submitted_suite(text, ctx.rules(tenant))


@router.post(
    "",
    summary="Sample size, detectable difference and projected cost of a paired comparison",
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
async def plan(
    body: PlanBody,
    principal: Principal = Depends(require_principal),
    ctx: ServiceContext = Depends(get_context),
) -> dict[str, Any]:
    """The plan `evalcluster plan` prints as JSON; nothing is stored or run."""
    if body.from_run is not None:
        await visible_owner(ctx, principal, body.from_run)
    suite = await ctx.call(_suite, ctx, principal.tenant, body)
    result = await ctx.call(plan_suite, suite, body.planning(), store=ctx.store)
    return json_safe(result)
