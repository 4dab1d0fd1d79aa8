"""``GET /v1/providers``: the live provider actors' breaker, limiter headroom, load and errors.

Actors are found through the GCS's named-actor list, which needs no dashboard (the state API
behind `ray.util.state.list_actors` does, and embedded clusters often run without one).
"""

from __future__ import annotations

import asyncio
from typing import Any

import ray
from fastapi import APIRouter, Depends

from evalcluster.cluster import NAMESPACE
from evalcluster.serve.auth import Principal, require_principal
from evalcluster.serve.jsonsafe import json_safe
from evalcluster.serve.schemas import ErrorBody, ProviderList, ProviderStatus

PROVIDER_PREFIX = "provider:"
STATUS_TIMEOUT_S = 5.0

router = APIRouter(
    prefix="/v1/providers",
    tags=["providers"],
    dependencies=[Depends(require_principal)],
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}},
)


def _provider_actor_names() -> list[str]:
    names = ray.util.list_named_actors(all_namespaces=True)
    return sorted(
        n["name"]
        for n in names
        if n.get("namespace") == NAMESPACE and n["name"].startswith(PROVIDER_PREFIX)
    )


async def _status(name: str, principal: Principal) -> ProviderStatus | None:
    try:
        actor = await asyncio.to_thread(ray.get_actor, name, namespace=NAMESPACE)
        status: dict[str, Any] = await asyncio.wait_for(
            _await(actor.status.remote()), STATUS_TIMEOUT_S
        )
    except Exception:  # noqa: BLE001 - retired (its run ended) since it was listed
        return None
    if status.get("from_client") and not principal.is_admin:
        return None  # an endpoint some tenant's suite defined: not everyone's business
    return ProviderStatus(
        provider=status.get("provider", name),
        actor=name,
        kind=status.get("kind"),
        breaker=status.get("breaker"),
        in_flight=status.get("in_flight"),
        requests=status.get("requests"),
        error_rate=json_safe(status.get("error_rate")),
        outcomes=status.get("outcomes") or {},
        limiter=json_safe(status.get("limiter") or {}),
        restarted=status.get("restarted"),
    )


@router.get("", response_model=ProviderList, summary="Provider endpoints' live state")
async def list_providers(principal: Principal = Depends(require_principal)) -> ProviderList:
    """One entry per provider actor alive in the cluster (simulated ones live for their run);
    endpoints that a tenant's suite defined itself are listed to admins only."""
    names = await asyncio.to_thread(_provider_actor_names)
    rows = await asyncio.gather(*(_status(n, principal) for n in names))
    return ProviderList(providers=[r for r in rows if r is not None])


async def _await(ref: Any) -> Any:
    return await ref
