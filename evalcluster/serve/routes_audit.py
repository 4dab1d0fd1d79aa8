"""``GET /v1/audit``: who did what through the service, for admins."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from evalcluster.serve.audit import read_events
from evalcluster.serve.auth import Principal, require_role
from evalcluster.serve.context import ServiceContext, get_context
from evalcluster.serve.schemas import NAME_PATTERN, AuditLog, ErrorBody

router = APIRouter(
    prefix="/v1/audit",
    tags=["audit"],
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}},
)


@router.get("", response_model=AuditLog, summary="The audit log, newest first (admins)")
async def read_audit(
    day: str | None = Query(
        None, pattern=r"^\d{4}-\d{2}-\d{2}$", description="Only this UTC day (YYYY-MM-DD)."
    ),
    tenant: str | None = Query(None, pattern=NAME_PATTERN, description="Only this tenant."),
    action: str | None = Query(
        None, pattern=r"^[a-z]+\.[a-z]+$", description="Only this action, e.g. run.start."
    ),
    limit: int = Query(100, ge=1, le=1000),
    principal: Principal = Depends(require_role("admin")),
    ctx: ServiceContext = Depends(get_context),
) -> AuditLog:
    events: list[dict[str, Any]] = await ctx.call(
        read_events, ctx.store, day=day, tenant=tenant, action=action, limit=limit
    )
    return AuditLog(events=events)
