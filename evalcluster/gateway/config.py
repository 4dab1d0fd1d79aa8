"""The gateway's part of the service configuration: which routes it serves.

```yaml
gateway:
  routes:
    openai/gpt-4o-mini: {provider: openai-prod, model: gpt-4o-mini}
    sim/sim-1: {provider: sim, model: sim-1, cache: true}
```

A route's name is what clients send as `model` (by convention ``provider/model``); its
`provider` must be in the operator's registry (`providers_file`). Tenants reach routes under
their quotas (`gateway_budget_usd_per_day`, `gateway_weight`, `gateway_routes`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator

from evalcluster.errors import SpecError
from evalcluster.suite.models import ProviderConfig

_ROUTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,199}$")


class GatewayRoute(BaseModel):
    """Where one route's requests go."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = Field(description="A provider of the operator's registry.")
    model: str = Field(min_length=1, description="The model name sent to that provider.")
    cache: bool = Field(
        False,
        description="Answer deterministic requests (temperature 0, one choice) from the "
        "tenant's cache without the client asking (`x-evalcluster-cache: use`).",
    )


class GatewayConfig(BaseModel):
    """`gateway:` in the service configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    routes: dict[str, GatewayRoute] = Field(
        default_factory=dict, description="Route name (the client's `model`) -> route."
    )
    rows_flush_s: float = Field(
        2.0, gt=0, description="Seconds a replica keeps call rows before writing them."
    )
    rows_flush_count: int = Field(500, ge=1, description="Rows that make a replica write at once.")

    @field_validator("routes")
    @classmethod
    def _names(cls, routes: dict[str, GatewayRoute]) -> dict[str, GatewayRoute]:
        for name in routes:
            if not _ROUTE_NAME.match(name):
                raise ValueError(
                    f"route name {name!r}: use letters, digits and . _ : / @ - "
                    "(at most 200, starting with a letter or digit)"
                )
        return routes


def check_routes(
    config: GatewayConfig,
    registry: Mapping[str, ProviderConfig],
    allowed: Mapping[str, tuple[str, ...] | None] | None = None,
) -> GatewayConfig:
    """`config`, or SpecError naming the route whose provider the registry lacks or cannot
    serve, or the tenant whose `gateway_routes` (`allowed`: tenant -> names) names no route."""
    for tenant, names in (allowed or {}).items():
        unknown = [n for n in names or () if n not in config.routes]
        if unknown:
            raise SpecError(
                f"no gateway route {unknown[0]!r} (routes: {', '.join(config.routes) or 'none'})",
                field=f"tenants.{tenant}.quotas.gateway_routes",
            )
    for name, route in config.routes.items():
        field = f"gateway.routes.{name}.provider"
        provider = registry.get(route.provider)
        if provider is None:
            known = ", ".join(sorted(registry)) or "none: set providers_file"
            raise SpecError(
                f"no provider {route.provider!r} in the registry (known: {known})", field=field
            )
        if provider.kind == "simulated" and not provider.base_url:
            raise SpecError(
                f"provider {route.provider!r} is simulated without base_url: its simulator is "
                "started per run; give it the base_url of a running simulator "
                "(`evalcluster simulate`) to serve it through the gateway",
                field=field,
            )
    return config
