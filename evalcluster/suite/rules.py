"""What a suite that arrives from someone else (the HTTP service) may do.

A suite on the user's own machine may name any file, any endpoint and any key variable: it is
their machine. A suite submitted to the shared service is hostile input, and these rules bind
it before anything is read or sent:

- Providers come from the operator's registry. A suite may name registry providers in its
  targets and judges but may not redefine them, and may not load a providers file.
- With ``client_providers: deny`` a suite defines no provider of its own (``kind: simulated``
  excepted: the run starts that simulator on the cluster and nothing leaves it). With
  ``no_secrets`` it may, but each one is marked ``from_client``: the provider layer then
  resolves no server-held key and reaches public addresses only (plus the operator's
  ``client_networks``), checked again at every connection.
- The dataset is resolved by the service's confined resolver (the tenant's uploads and the
  configured roots), never as a plain path.
- YAML anchors and aliases are refused (a few hundred bytes of aliases expand to gigabytes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from evalcluster.errors import SpecError
from evalcluster.suite.models import ProviderConfig, SuiteSpec

if TYPE_CHECKING:
    from evalcluster.suite.datasets import DatasetRef

ClientProviders = Literal["deny", "no_secrets"]
MAX_NESTING = 64


class DatasetResolver(Protocol):
    """Turns a submitted suite's `dataset.path` into a readable dataset, or refuses it."""

    def resolve(self, path: str, declared_format: str | None) -> DatasetRef: ...


@dataclass(frozen=True)
class SubmissionRules:
    """The limits a submitted suite is loaded under (see the module docstring)."""

    registry: Mapping[str, ProviderConfig] = field(default_factory=dict)
    client_providers: ClientProviders = "deny"
    client_networks: tuple[str, ...] = ()
    datasets: DatasetResolver | None = None

    def providers_for(self, spec: SuiteSpec) -> dict[str, ProviderConfig]:
        """The suite's providers under these rules; SpecError names the offending field."""
        if spec.providers_file:
            raise SpecError(
                "a submitted suite cannot load a providers file; name providers from the "
                "service's registry (GET /v1/providers lists the live ones)",
                field="providers_file",
            )
        providers = dict(self.registry)
        for name, config in spec.providers.items():
            where = f"providers.{name}"
            if name in self.registry:
                raise SpecError(
                    f"{name!r} is a provider of the service's registry; a suite cannot redefine it",
                    field=where,
                )
            for key_field in ("api_key_env", "api_key_file"):
                if getattr(config, key_field):
                    raise SpecError(
                        "a provider defined in a submitted suite cannot use a server-held key; "
                        "name a provider of the service's registry instead",
                        field=f"{where}.{key_field}",
                    )
            if config.kind == "simulated" and not config.base_url:
                # Started by the run, on the cluster, for the run; it reaches nothing else.
                providers[name] = config.model_copy(
                    update={"from_client": False, "client_networks": []}
                )
                continue
            if self.client_providers == "deny":
                raise SpecError(
                    "this service runs only providers of its registry (client_providers: deny); "
                    f"registry: {', '.join(sorted(self.registry)) or 'none'}",
                    field=where,
                )
            if config.allow_private_network:
                raise SpecError(
                    "a provider defined in a submitted suite cannot reach private addresses",
                    field=f"{where}.allow_private_network",
                )
            providers[name] = config.model_copy(
                update={"from_client": True, "client_networks": list(self.client_networks)}
            )
        return _used(spec, providers)


def _used(spec: SuiteSpec, providers: dict[str, ProviderConfig]) -> dict[str, ProviderConfig]:
    """The providers the suite's targets and judges reach, fallbacks included: the registry's
    others stay out of the suite (and out of its version, and no simulator starts for them).
    A name that is not defined stays unresolved here; the loader reports it by its field."""
    wanted = [t.provider for t in (*spec.targets, *spec.judges)]
    used: dict[str, ProviderConfig] = {}
    while wanted:
        name = wanted.pop()
        if name in used or name not in providers:
            continue
        used[name] = providers[name]
        wanted.extend(providers[name].fallback)
    return used


def check_nesting(value: object, *, limit: int = MAX_NESTING, field: str | None = None) -> None:
    """SpecError if `value` (parsed YAML or JSON) nests deeper than `limit`; iterative."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            raise SpecError(f"nested more than {limit} levels deep", field=field)
        stack.extend((child, depth + 1) for child in children)
