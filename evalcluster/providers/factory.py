"""`build_adapter`: the one way the rest of evalcluster gets a provider adapter."""

from __future__ import annotations

from evalcluster.errors import SpecError
from evalcluster.providers.adapter import HttpAdapter
from evalcluster.providers.base import ProviderAdapter
from evalcluster.providers.registry import adapter_class
from evalcluster.providers.secrets import Secret, resolve_api_key
from evalcluster.providers.transport import Transport
from evalcluster.spec.models import ProviderConfig

__all__ = ["SIMULATOR_KEY", "build_adapter"]

# The simulator accepts any non-empty key unless it was given a list; this one is no secret.
SIMULATOR_KEY = "evalcluster-simulator"


def build_adapter(
    name: str, config: ProviderConfig, *, transport: Transport | None = None
) -> ProviderAdapter:
    """The adapter for provider `name`, its key resolved from `api_key_env` / `api_key_file`.

    `kind: simulated` gets the adapter of `config.simulator.format`, pointed at the simulator
    the run started (the run fills `base_url`). Without `transport` the adapter owns a pooled
    aiohttp transport sized to `max_concurrency`; pass one to share a pool (then the caller
    closes it). Raises `SpecError` for an unknown kind, a missing key or a refused URL.
    """
    simulated = config.kind == "simulated"
    cls = adapter_class(config.simulator.format if simulated else config.kind)
    if not issubclass(cls, HttpAdapter):
        return cls(name, config, transport=transport)  # type: ignore[call-arg]
    if simulated and not config.base_url:
        raise SpecError(
            f"provider {name!r} is simulated but has no base_url: start it through a run "
            "(or `evalcluster simulate`) and set base_url to its address",
            field=f"providers.{name}.base_url",
        )
    required = cls.requires_key(config) and not simulated
    api_key = resolve_api_key(
        name,
        env=config.api_key_env,
        file=config.api_key_file,
        default_env=None if simulated else cls.default_key_env,
        required=required,
    )
    if api_key is None and simulated:
        api_key = Secret(SIMULATOR_KEY)
    return cls(name, config, api_key=api_key, transport=transport)
