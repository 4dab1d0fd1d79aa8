"""What the routes share: settings, the store and the suite registry, reached off the event loop.

Store calls are synchronous and may go to S3; run on the event loop they would stall every
request of the replica, so `ServiceContext.call` runs them in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import cached_property
from typing import ParamSpec, TypeVar

from fastapi import Request

from evalcluster.serve.settings import ServeSettings
from evalcluster.store.fs import Store, open_store
from evalcluster.store.suites import SuiteRegistry

P = ParamSpec("P")
T = TypeVar("T")


class ServiceContext:
    """One per app: the settings and the lazily opened store behind them."""

    def __init__(self, settings: ServeSettings):
        self.settings = settings

    @cached_property
    def store(self) -> Store:
        return open_store(self.settings.store_uri, endpoint_url=self.settings.endpoint_url)

    @cached_property
    def suites(self) -> SuiteRegistry:
        return SuiteRegistry(self.store)

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking call (store, registry, suite loading) in a worker thread."""
        return await asyncio.to_thread(fn, *args, **kwargs)


def get_context(request: Request) -> ServiceContext:
    """FastAPI dependency: the app's `ServiceContext`."""
    return request.app.state.context
