"""Provider actors on a real local Ray, talking over real HTTP to simulators in this process."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from evalcluster.cluster import NAMESPACE
from evalcluster.providers.base import CompletionRequest, Message
from evalcluster.simulator import SimulatorConfig, SimulatorThread
from evalcluster.suite.models import ProviderConfig
from tests.conftest import openai_provider

ActorFactory = Callable[..., Any]


def provider_config(base_url: str, **extra: Any) -> ProviderConfig:
    """An openai-kind provider config pointed at a simulator, with test-sized timeouts."""
    data = openai_provider(base_url, timeout_s=10, **extra)
    return ProviderConfig.model_validate(data)


def requests(
    n: int, *, model: str = "sim-1", start: int = 0, **params: Any
) -> list[CompletionRequest]:
    """`n` distinct small arithmetic requests."""
    params = {"max_tokens": 16, **params}
    return [
        CompletionRequest(model, (Message("user", f"What is {i} + {i + 1}?"),), params)
        for i in range(start, start + n)
    ]


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(accuracy=1.0)) as sim:
        yield sim


@pytest.fixture
def make_actor(local_ray) -> Iterator[ActorFactory]:
    """Start named provider actors (as `ensure_provider_actors` names them); kill them after."""
    from evalcluster.actors.provider import ProviderActor, provider_actor_name

    started: list[Any] = []

    def make(
        name: str,
        config: ProviderConfig,
        fallbacks: dict[str, ProviderConfig] | None = None,
        **options: Any,
    ) -> Any:
        handle = ProviderActor.options(
            name=provider_actor_name(name, config),
            namespace=NAMESPACE,
            **options,
        ).remote(name, config, {name: config, **(fallbacks or {})})
        local_ray.get(handle.ready.remote())
        started.append(handle)
        return handle

    yield make
    for handle in started:
        with contextlib.suppress(Exception):  # already dead is fine
            local_ray.kill(handle)


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]
