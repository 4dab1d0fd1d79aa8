"""What the routes share: settings, the store, per-tenant suite registries and submission rules.

Store calls are synchronous and may go to S3; run on the event loop they would stall every
request of the replica, so `ServiceContext.call` runs them in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import cached_property
from typing import ParamSpec, TypeVar

from fastapi import Request

from evalcluster.serve.datasets import TenantDatasets
from evalcluster.serve.settings import ServeSettings
from evalcluster.store.fs import Store, open_store
from evalcluster.store.layout import tenant_prefix
from evalcluster.store.suites import SuiteRegistry
from evalcluster.suite.rules import SubmissionRules

P = ParamSpec("P")
T = TypeVar("T")


class ServiceContext:
    """One per app: the settings and the lazily opened store behind them."""

    def __init__(self, settings: ServeSettings):
        self.settings = settings
        self.websockets: dict[str, int] = {}  # open event streams per tenant, this replica
        self._submit_locks: dict[str, asyncio.Lock] = {}
        self._dataset_locks: dict[str, asyncio.Lock] = {}

    @cached_property
    def store(self) -> Store:
        return open_store(self.settings.store_uri, endpoint_url=self.settings.endpoint_url)

    def suites(self, tenant: str) -> SuiteRegistry:
        """The suite registry of `tenant` (``tenants/<tenant>/suites/``)."""
        return SuiteRegistry(self.store, prefix=f"{tenant_prefix(tenant)}suites/")

    def rules(self, tenant: str) -> SubmissionRules:
        """The rules `tenant`'s submitted suites are loaded under."""
        settings = self.settings
        return SubmissionRules(
            registry=settings.registry,
            client_providers=settings.client_providers,
            client_networks=settings.client_networks,
            datasets=TenantDatasets(
                self.store, tenant, settings.dataset_roots, settings.endpoint_url
            ),
        )

    def submit_lock(self, tenant: str) -> asyncio.Lock:
        """Serialises one tenant's run submissions in this replica, so two at once cannot both
        pass a quota that has room for one."""
        return self._submit_locks.setdefault(tenant, asyncio.Lock())

    def dataset_lock(self, tenant: str) -> asyncio.Lock:
        """Serialises one tenant's dataset uploads and deletions in this replica (the quota
        count, and whether other names still point at the bytes a change would delete)."""
        return self._dataset_locks.setdefault(tenant, asyncio.Lock())

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking call (store, registry, suite loading) in a worker thread."""
        return await asyncio.to_thread(fn, *args, **kwargs)


def get_context(request: Request) -> ServiceContext:
    """FastAPI dependency: the app's `ServiceContext`."""
    return request.app.state.context
