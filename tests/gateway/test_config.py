"""The gateway's routes in the service configuration."""

from __future__ import annotations

import pytest

from evalcluster.errors import SpecError
from evalcluster.gateway.config import GatewayConfig, check_routes
from evalcluster.serve.config import ServiceConfig
from evalcluster.suite.models import ProviderConfig


def _registry() -> dict[str, ProviderConfig]:
    return {
        "prod": ProviderConfig(kind="openai", base_url="https://api.openai.com/v1"),
        "sim": ProviderConfig(kind="simulated"),
    }


def test_routes_are_validated_against_the_registry() -> None:
    config = GatewayConfig.model_validate(
        {"routes": {"openai/gpt": {"provider": "prod", "model": "gpt"}}}
    )
    assert check_routes(config, _registry()) is config
    missing = GatewayConfig.model_validate({"routes": {"x/y": {"provider": "nope", "model": "y"}}})
    with pytest.raises(SpecError) as err:
        check_routes(missing, _registry())
    assert err.value.field == "gateway.routes.x/y.provider" and "prod" in err.value.message


def test_a_tenant_may_only_be_limited_to_routes_that_exist() -> None:
    config = GatewayConfig.model_validate({"routes": {"a/b": {"provider": "prod", "model": "b"}}})
    assert check_routes(config, _registry(), {"t": ("a/b",), "u": None})
    with pytest.raises(SpecError) as err:
        check_routes(config, _registry(), {"t": ("a/b", "a/typo")})
    assert err.value.field == "tenants.t.quotas.gateway_routes" and "a/typo" in err.value.message


def test_a_simulated_provider_needs_a_running_simulator() -> None:
    config = GatewayConfig.model_validate({"routes": {"sim/s": {"provider": "sim", "model": "s"}}})
    with pytest.raises(SpecError, match="base_url"):
        check_routes(config, _registry())


@pytest.mark.parametrize("name", ["", "has space", "/lead", "x" * 201])
def test_bad_route_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="route name"):
        GatewayConfig.model_validate({"routes": {name: {"provider": "p", "model": "m"}}})


def test_unknown_keys_and_tenant_quotas() -> None:
    with pytest.raises(ValueError):
        GatewayConfig.model_validate({"routes": {"a": {"provider": "p", "model": "m", "x": 1}}})
    config = ServiceConfig.model_validate(
        {
            "tenants": {
                "t": {
                    "api_keys_env": "K",
                    "quotas": {
                        "gateway_budget_usd_per_day": 2.5,
                        "gateway_weight": 3,
                        "gateway_routes": ["a"],
                    },
                }
            }
        }
    )
    quotas = config.tenants["t"].quotas
    assert (quotas.gateway_budget_usd_per_day, quotas.gateway_weight) == (2.5, 3)
    assert quotas.gateway_routes == ("a",)
    with pytest.raises(ValueError):
        ServiceConfig.model_validate(
            {"tenants": {"t": {"api_keys_env": "K", "quotas": {"gateway_weight": 0}}}}
        )
