"""One gateway call through a provider actor, from a checked request to its outcome.

`Gateway` lives once per replica: actor handles per provider, the replica's view of spend,
its row buffer and the cache. It decides nothing about HTTP; `serve/routes_gateway.py` turns
its outcomes and `GatewayError`s into answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import RayError

from evalcluster.actors.provider import CompletionResult, provider_actor
from evalcluster.gateway.cache import GatewayCache
from evalcluster.gateway.config import GatewayConfig, GatewayRoute
from evalcluster.gateway.errors import GatewayError, provider_failure
from evalcluster.gateway.ledger import CallRecord, SpendView, ledger_handle
from evalcluster.gateway.rows import RowBuffer, day_of, now
from evalcluster.gateway.wire import ChatRequest, to_completion_request
from evalcluster.providers.base import Completion
from evalcluster.store.fs import Store
from evalcluster.suite.models import ProviderConfig

log = logging.getLogger("evalcluster.gateway")
QUEUE_PREFIX = "gateway:"  # a tenant's calls share the provider's fair queue under this key
DISCONNECTED = "client_disconnected"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls, as the gateway needs it (from the service's `Principal`)."""

    tenant: str
    key_id: str
    weight: float = 1.0
    budget_usd_per_day: float | None = None
    routes: tuple[str, ...] | None = None  # None: every route


@dataclass(slots=True)
class Outcome:
    """What became of one call: an answer or an error, and what the row and ledger need."""

    route: str
    provider: str | None = None
    provider_model: str | None = None
    completion: Completion | None = None
    error: GatewayError | None = None
    cache_hit: bool = False
    served_by: str | None = None
    attempts: int = 0
    cost_usd: float = 0.0


class Gateway:
    def __init__(
        self,
        config: GatewayConfig,
        registry: Mapping[str, ProviderConfig],
        store: Store,
        store_uri: str | None,
        endpoint_url: str | None = None,
    ) -> None:
        self.config = config
        self.registry = dict(registry)
        self.rows = RowBuffer(store, config.rows_flush_s, config.rows_flush_count)
        self.cache = GatewayCache(store)
        self._store_uri = store_uri
        self._endpoint_url = endpoint_url
        self._actors: dict[str, Any] = {}
        self._spend: SpendView | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # --- lookups -------------------------------------------------------------------------

    def routes_for(self, caller: Caller) -> dict[str, GatewayRoute]:
        allowed = caller.routes
        return {
            name: route
            for name, route in self.config.routes.items()
            if allowed is None or name in allowed
        }

    def route(self, caller: Caller, name: str) -> GatewayRoute:
        route = self.routes_for(caller).get(name)
        if route is None:  # another tenant's route reads exactly as one that does not exist
            raise GatewayError(
                404,
                f"The model '{name}' does not exist or you do not have access to it.",
                code="model_not_found",
                param="model",
                error_kind="unknown_model",
            )
        return route

    @property
    def spend(self) -> SpendView:
        if self._spend is None:
            self._spend = SpendView(ledger_handle(self._store_uri, self._endpoint_url))
        return self._spend

    def _actor(self, provider: str) -> Any:
        actor = self._actors.get(provider)
        if actor is None:
            actor = self._actors[provider] = provider_actor(provider, self.registry)
        return actor

    # --- the call ------------------------------------------------------------------------

    async def check_budget(self, caller: Caller) -> None:
        budget = caller.budget_usd_per_day
        if budget is None:
            return
        try:
            spent = await self.spend.spent(caller.tenant, day_of(now()))
        except RayError as exc:  # no ledger, no spending: the budget cannot be checked
            log.warning("gateway: spend ledger unavailable: %s", exc)
            raise GatewayError(
                503,
                "the gateway cannot check this tenant's budget right now",
                type="server_error",
                code="ledger_unavailable",
                retry_after_s=5,
                error_kind="ledger_unavailable",
            ) from None
        if spent >= budget:
            raise GatewayError(
                429,
                f"tenant {caller.tenant!r} has spent its gateway budget for today "
                f"(${spent:.4f} of ${budget:g} per UTC day); this is not a rate limit: "
                "retrying will not help before 00:00 UTC",
                type="insufficient_quota",
                code="insufficient_quota",
                error_kind="budget_exhausted",
                should_retry=False,
            )

    async def complete(
        self, caller: Caller, chat: ChatRequest, *, use_cache: bool, outcome: Outcome
    ) -> Outcome:
        """Fill `outcome` with the answer to `chat` or the error to give. Cancelled (the
        client went away), the provider actor's call is cancelled too and gives back its slot
        at once; `outcome` then holds what was known (the route's provider)."""
        try:
            route = self.route(caller, chat.model)
            outcome.provider, outcome.provider_model = route.provider, route.model
            await self.check_budget(caller)
        except GatewayError as exc:
            outcome.error = exc
            return outcome
        request = to_completion_request(chat, route.model)
        cacheable = (use_cache or route.cache) and chat.deterministic
        if cacheable:
            hit = await self.cache.get(caller.tenant, route.provider, request)
            if hit is not None:
                outcome.completion, outcome.cache_hit = hit, True
                return outcome
        result = await self._call(route.provider, caller, request)
        outcome.served_by, outcome.attempts = result.served_by, result.attempts
        outcome.cost_usd = result.cost_usd
        if not result.ok or result.completion is None:
            outcome.error = provider_failure(
                result.error_kind or "provider_error",
                chat.model,
                result.error,
                result.retry_after_s,
            )
            return outcome
        outcome.completion = result.completion
        if cacheable:
            self.background(
                self.cache.put(caller.tenant, route.provider, request, result.completion)
            )
        return outcome

    async def _call(self, provider: str, caller: Caller, request: Any) -> CompletionResult:
        ref = self._actor(provider).complete_one.remote(
            QUEUE_PREFIX + caller.tenant, request, caller.weight
        )
        try:
            return await ref
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                ray.cancel(ref)
            raise
        except RayError as exc:  # the actor could not start (a bad key setting) or died
            log.warning("gateway: provider actor %s failed: %s", provider, exc)
            self._actors.pop(provider, None)
            return CompletionResult(
                served_by=provider,
                attempts=0,
                latency_ms=0.0,
                error_kind="unavailable",
                error=f"the provider actor of {provider} is unavailable",
            )

    def background(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def record(self, caller: Caller, row: dict[str, Any]) -> None:
        """Log one call: its row, and its spend in the ledger (in the background)."""
        self.rows.add(caller.tenant, row)
        outcome = "cached" if row["cache_hit"] else row["error_kind"] or "ok"
        record = CallRecord(
            caller.tenant,
            row["model"],
            day_of(row["finished_at"]),
            outcome,
            row["input_tokens"],
            row["output_tokens"],
            row["cost_usd"],
        )
        self.spend.add(record)

    async def close(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._spend is not None:
            await self._spend.flush()
        await self.rows.close()
