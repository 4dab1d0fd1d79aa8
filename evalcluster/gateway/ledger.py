"""Spend through the gateway per tenant, route and UTC day: one named Ray actor for the cluster.

Every replica reports each call (`SpendLedger.add`) and reads a tenant's spend of the day
before letting a call through (`SpendView`, which asks the ledger at most every
`REFRESH_S` seconds per tenant and adds its own calls in between). A budget can so be overrun
by the calls in flight when it runs out plus what other replicas spent within `REFRESH_S`;
the check is a guard against runaway spending, not an invoice. The ledger also records the
gateway's Prometheus metrics. A restarted ledger starts from the day's rows in the lake.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import ray

from evalcluster.actors import metrics
from evalcluster.cluster import NAMESPACE

LEDGER_NAME = "gateway:ledger"
REFRESH_S = 1.0
SEND_S = 0.2
log = logging.getLogger("evalcluster.gateway")
METRICS_FLUSH_S = 1.0


@dataclass(slots=True)
class Spend:
    requests: int = 0
    errors: int = 0
    cache_hits: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "cache_hits": self.cache_hits,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 9),
        }


@dataclass(frozen=True, slots=True)
class CallRecord:
    """What the ledger needs of one call."""

    tenant: str
    model: str
    day: str
    outcome: str  # "ok", "cached" or the error kind
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=1000)
class SpendLedger:
    def __init__(self, store_uri: str | None = None, endpoint_url: str | None = None) -> None:
        self.spend: dict[tuple[str, str, str], Spend] = defaultdict(Spend)
        self._pending: list[CallRecord] = []
        self._flushed_at = time.monotonic()
        if store_uri is not None:
            self._load(store_uri, endpoint_url)

    def _load(self, store_uri: str, endpoint_url: str | None) -> None:
        """Today's spend from the rows already in the lake (a restarted ledger)."""
        from evalcluster.gateway.rows import day_of, now, read_gateway_rows
        from evalcluster.store.fs import open_store

        today = day_of(now())
        try:
            rows = read_gateway_rows(
                open_store(store_uri, endpoint_url=endpoint_url), day=today
            ).to_pylist()
        except Exception as exc:  # noqa: BLE001 - an unreadable lake: start from zero
            log.warning("gateway ledger: cannot read today's rows, starting at 0: %s", exc)
            return
        for row in rows:
            outcome = "cached" if row["cache_hit"] else row["error_kind"] or "ok"
            self._count(
                CallRecord(
                    row["tenant"],
                    row["model"],
                    today,
                    outcome,
                    row["input_tokens"],
                    row["output_tokens"],
                    row["cost_usd"],
                )
            )

    async def ready(self) -> bool:
        return True

    def _count(self, record: CallRecord) -> Spend:
        spend = self.spend[(record.day, record.tenant, record.model)]
        spend.requests += 1
        spend.errors += record.outcome not in ("ok", "cached")
        spend.cache_hits += record.outcome == "cached"
        spend.input_tokens += record.input_tokens
        spend.output_tokens += record.output_tokens
        spend.cost_usd += record.cost_usd
        return spend

    async def add(self, records: list[CallRecord]) -> dict[tuple[str, str], float]:
        """Count calls; each of their tenants' spend of that day after them."""
        for record in records:
            self._count(record)
        self._pending.extend(records)
        if time.monotonic() - self._flushed_at >= METRICS_FLUSH_S:
            self._flush_metrics()
        return {(r.tenant, r.day): self._tenant_total(r.tenant, r.day) for r in records}

    async def spent(self, tenant: str, day: str) -> float:
        return self._tenant_total(tenant, day)

    def _tenant_total(self, tenant: str, day: str) -> float:
        return sum(s.cost_usd for (d, t, _), s in self.spend.items() if d == day and t == tenant)

    async def usage(self, tenant: str | None, day: str | None) -> list[dict[str, Any]]:
        """One entry per day, tenant and route (of `tenant` / `day` if given)."""
        self._flush_metrics()
        return [
            {"day": d, "tenant": t, "model": m, **s.as_dict()}
            for (d, t, m), s in sorted(self.spend.items())
            if (tenant is None or t == tenant) and (day is None or d == day)
        ]

    def _flush_metrics(self) -> None:
        self._flushed_at = time.monotonic()
        pending, self._pending = self._pending, []
        sums: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0, 0, 0, 0.0])
        for r in pending:
            entry = sums[(r.tenant, r.model, r.outcome)]
            entry[0] += 1
            entry[1] += r.input_tokens
            entry[2] += r.output_tokens
            entry[3] += r.cost_usd
        for (tenant, model, outcome), (count, tin, tout, cost) in sums.items():
            tags = {"tenant": tenant, "model": model}
            metrics.gateway_requests_total().inc(count, tags={**tags, "outcome": outcome})
            if tin:
                metrics.gateway_tokens_total().inc(tin, tags={**tags, "direction": "input"})
            if tout:
                metrics.gateway_tokens_total().inc(tout, tags={**tags, "direction": "output"})
            if cost:
                metrics.gateway_cost_usd_total().inc(cost, tags=tags)


def ledger_handle(store_uri: str | None, endpoint_url: str | None = None) -> Any:
    """The cluster's ledger, created by the first replica that asks."""
    return SpendLedger.options(
        name=LEDGER_NAME, namespace=NAMESPACE, get_if_exists=True, lifetime="detached"
    ).remote(store_uri, endpoint_url)


class SpendView:
    """A replica's view of each tenant's spend today (see the module docstring). Calls are
    sent to the ledger in batches, at most every `SEND_S` seconds (one actor call per
    request was a visible share of the gateway's cost); until then they count locally."""

    def __init__(self, ledger: Any) -> None:
        self.ledger = ledger
        self._known: dict[tuple[str, str], tuple[float, float]] = {}  # -> (spent, read at)
        self._unsent: list[CallRecord] = []
        self._sender: asyncio.Task[None] | None = None

    async def spent(self, tenant: str, day: str) -> float:
        known = self._known.get((tenant, day))
        if known is None or time.monotonic() - known[1] >= REFRESH_S:
            total = await self.ledger.spent.remote(tenant, day)
            known = self._known[(tenant, day)] = (total, time.monotonic())
        unsent = sum(r.cost_usd for r in self._unsent if r.tenant == tenant and r.day == day)
        return known[0] + unsent

    def add(self, record: CallRecord) -> None:
        self._unsent.append(record)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_soon())

    async def _send_soon(self) -> None:
        await asyncio.sleep(SEND_S)
        await self.flush()

    async def flush(self) -> None:
        """Send the calls not yet in the ledger."""
        batch, self._unsent = self._unsent, []
        if not batch:
            return
        try:
            totals = await self.ledger.add.remote(batch)
        except Exception as exc:  # noqa: BLE001 - a lost ledger: its restart rereads the rows
            log.warning("gateway: spend of %d calls not counted: %s", len(batch), exc)
            return
        now = time.monotonic()
        for key, total in totals.items():
            self._known[key] = (total, now)
