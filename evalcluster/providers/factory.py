"""`build_adapter`: the one way the rest of evalcluster gets a provider adapter."""

from __future__ import annotations

from evalcluster.errors import SpecError
from evalcluster.providers.adapter import HttpAdapter
from evalcluster.providers.base import ProviderAdapter
from evalcluster.providers.netguard import NetworkPolicy
from evalcluster.providers.registry import adapter_class
from evalcluster.providers.secrets import Secret, resolve_api_key
from evalcluster.providers.transport import Transport
from evalcluster.suite.models import ProviderConfig

__all__ = ["SIMULATOR_KEY", "build_adapter", "check_client_provider"]

# The simulator accepts any non-empty key unless it was given a list; this one is no secret.
SIMULATOR_KEY = "evalcluster-simulator"

_SERVER_KEY = (
    "a provider defined in a submitted suite cannot use a server-held key; "
    "use a provider from the operator's registry"
)


def build_adapter(
    name: str,
    config: ProviderConfig,
    *,
    transport: Transport | None = None,
    network_policy: NetworkPolicy | None = None,
) -> ProviderAdapter:
    """The adapter for provider `name`, its key resolved from `api_key_env` / `api_key_file`.

    `kind: simulated` gets the adapter of `config.simulator.format`, pointed at the simulator
    the run started (the run fills `base_url`). Without `transport` the adapter owns a pooled
    transport sized to `max_concurrency`; pass one to share a pool (then the caller closes it).
    Raises `SpecError` for an unknown kind, a missing key or a refused URL.

    A provider defined by a submitted suite (`config.from_client`) is first held to
    `check_client_provider`: no key is resolved for it at all, not even the vendor's default
    variable. Its URL is checked against `network_policy` (default:
    `NetworkPolicy.for_config(config)`, public addresses plus `config.client_networks`) and
    its transport checks every connection against the same policy.
    """
    simulated = config.kind == "simulated"
    cls = adapter_class(config.simulator.format if simulated else config.kind)
    if config.from_client:
        check_client_provider(name, config, cls)
    if not issubclass(cls, HttpAdapter):
        return cls(name, config, transport=transport)  # type: ignore[call-arg]
    if simulated and not config.base_url:
        raise SpecError(
            f"provider {name!r} is simulated but has no base_url: start it through a run "
            "(or `evalcluster simulate`) and set base_url to its address",
            field=f"providers.{name}.base_url",
        )
    if config.from_client:
        api_key = None  # check_client_provider refused every way to a server-held key
    else:
        api_key = resolve_api_key(
            name,
            env=config.api_key_env,
            file=config.api_key_file,
            default_env=None if simulated else cls.default_key_env,
            required=cls.requires_key(config) and not simulated,
        )
    if api_key is None and simulated:
        api_key = Secret(SIMULATOR_KEY)
    return cls(name, config, api_key=api_key, transport=transport, network_policy=network_policy)


def check_client_provider(
    name: str, config: ProviderConfig, cls: type[ProviderAdapter] | None = None
) -> None:
    """Raise `SpecError`, naming the field, if a provider defined by a submitted suite asks for
    what such a provider may not have: a server-held key (`api_key_env`, `api_key_file`, or a
    kind whose calls need a key, which would otherwise come from the vendor's default
    variable), `allow_private_network`, or a kind that is not plain HTTP (only an `HttpAdapter`
    enforces the network policy). `cls` is the adapter class (looked up when None).

    It checks the fields only, reads nothing and resolves no name: the service may call it at
    submission; `build_adapter` calls it again and then checks the URL.
    """
    where = f"providers.{name}"
    simulated = config.kind == "simulated"
    if cls is None:
        cls = adapter_class(config.simulator.format if simulated else config.kind)
    for field in ("api_key_env", "api_key_file"):
        if getattr(config, field):
            raise SpecError(f"provider {name!r}: {_SERVER_KEY}", field=f"{where}.{field}")
    if config.allow_private_network:
        raise SpecError(
            f"provider {name!r}: a provider defined in a submitted suite cannot reach private "
            "or link-local addresses (allow_private_network)",
            field=f"{where}.allow_private_network",
        )
    if not issubclass(cls, HttpAdapter):
        raise SpecError(
            f"provider {name!r}: kind {config.kind!r} cannot be defined in a submitted suite",
            field=f"{where}.kind",
        )
    if not simulated and cls.requires_key(config):
        custom = config.kind == "custom"
        raise SpecError(
            f"provider {name!r}: "
            + ("custom.headers use {api_key}" if custom else f"kind {config.kind!r} needs a key")
            + f", and {_SERVER_KEY}"
            + ("" if custom else " (or kind local for a keyless OpenAI-compatible server)"),
            field=f"{where}.custom.headers" if custom else f"{where}.kind",
        )
