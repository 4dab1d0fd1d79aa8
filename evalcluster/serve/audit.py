"""The audit log: every change made through the service, who made it and when, in the store.

One small JSON object per event under ``audit/<yyyy-mm-dd>/<unix ns>-<random>.json``: object
stores cannot append, and separate objects never overwrite each other. An event names the
tenant, the key (a digest prefix, never the key), the action (``suite.create``, ``run.start``,
``run.cancel``, ``run.resume``, ``suite.delete``, ``dataset.upload``, ``dataset.delete``) and
what it acted on. Admins read it at ``GET /v1/audit``.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from evalcluster.errors import NotFoundError, StoreError
from evalcluster.serve.auth import Principal
from evalcluster.store.fs import Store
from evalcluster.store.layout import AUDIT_PREFIX

log = logging.getLogger("evalcluster.serve")


def audit_event(principal: Principal, action: str, **what: Any) -> dict[str, Any]:
    """One audit event (pure)."""
    return {
        "at": datetime.now(UTC).isoformat(),
        "tenant": principal.tenant,
        "key_id": principal.key_id,
        "role": principal.role,
        "action": action,
        **{k: v for k, v in what.items() if v is not None},
    }


def write_event(store: Store, event: dict[str, Any]) -> str:
    """Store `event`; its key."""
    day = event["at"][:10]
    key = f"{AUDIT_PREFIX}{day}/{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
    store.put(key, json.dumps(event, sort_keys=True).encode())
    return key


async def record(ctx: Any, principal: Principal, action: str, **what: Any) -> None:
    """Write an audit event for a change that has just been made (in a worker thread).

    A change is never undone because its audit record could not be written; the failure is
    logged for the operator instead.
    """
    try:
        await ctx.call(write_event, ctx.store, audit_event(principal, action, **what))
    except StoreError as exc:
        log.error("audit record of %s by tenant %s not written: %s", action, principal.tenant, exc)


def read_events(
    store: Store,
    *,
    day: str | None = None,
    tenant: str | None = None,
    action: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Events newest first, at most `limit`, optionally of one UTC day, tenant or action."""
    days = [day] if day else sorted(store.list_dirs(AUDIT_PREFIX), reverse=True)
    out: list[dict[str, Any]] = []
    for d in days:
        for key in sorted(store.list(f"{AUDIT_PREFIX}{d}/"), reverse=True):
            try:
                event = json.loads(store.get(key))
            except (NotFoundError, ValueError):
                continue
            if tenant is not None and event.get("tenant") != tenant:
                continue
            if action is not None and event.get("action") != action:
                continue
            out.append(event)
            if len(out) >= limit:
                return out
    return out
