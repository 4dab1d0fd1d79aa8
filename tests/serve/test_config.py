"""The service configuration file: tenants, roles, quotas, registry, roots, validated at start."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from evalcluster.errors import SpecError
from evalcluster.serve.auth import KEYS_ENV, AuthResult, Principal
from evalcluster.serve.settings import settings_from_args


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv(KEYS_ENV, raising=False)
    monkeypatch.setenv("TEAM_A_KEYS", "a-key-1, a-key-2")


def write_config(folder: Path, **overrides) -> Path:
    (folder / "ops.keys").write_text("# ops\nops-key\n")
    (folder / "data").mkdir(exist_ok=True)
    (folder / "providers.yaml").write_text(
        yaml.safe_dump(
            {
                "providers": {
                    "op-sim": {"kind": "simulated"},
                    "op-local": {"kind": "local", "base_url": "http://127.0.0.1:8000/v1"},
                }
            }  # fmt: skip
        )
    )
    config = {
        "tenants": {
            "team-a": {
                "api_keys_env": "TEAM_A_KEYS",
                "role": "runner",
                "quotas": {"max_active_runs": 2, "max_budget_usd_per_run": 20},
            },
            "ops": {"api_keys_file": "ops.keys", "role": "admin"},
        },
        "providers_file": "providers.yaml",
        "datasets": {"roots": ["data"]},
        "client_providers": "no_secrets",
        "client_networks": ["10.1.0.0/16"],
        **overrides,
    }
    path = folder / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_each_key_belongs_to_its_tenant_with_its_role_and_quotas(tmp_path):
    settings = settings_from_args({"config": str(write_config(tmp_path)), "tracking_uri": "none"})
    a = settings.api_keys.identify("a-key-2")
    ops = settings.api_keys.identify("ops-key")
    assert isinstance(a, Principal) and isinstance(ops, Principal)
    assert (a.tenant, a.role, a.quotas.max_active_runs) == ("team-a", "runner", 2)
    assert (ops.tenant, ops.role) == ("ops", "admin")
    assert a.key_id != settings.api_keys.identify("a-key-1").key_id  # type: ignore[union-attr]
    assert settings.api_keys.identify("nope") is AuthResult.WRONG
    assert settings.api_keys.identify(None) is AuthResult.MISSING


def test_relative_paths_in_the_file_mean_next_to_it(tmp_path):
    settings = settings_from_args({"config": str(write_config(tmp_path))})
    assert settings.dataset_roots == (str((tmp_path / "data").resolve()),)
    assert set(settings.registry) == {"op-sim", "op-local"}
    assert settings.client_providers == "no_secrets"
    assert settings.client_networks == ("10.1.0.0/16",)


def test_arguments_beside_the_file_override_it(tmp_path):
    settings = settings_from_args(
        {"config": str(write_config(tmp_path)), "client_providers": "deny", "max_websockets": "7"}
    )
    assert settings.client_providers == "deny" and settings.max_websockets == 7


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"tenants": {"x": {"role": "runner", "api_keys_env": "TEAM_A_KEYS", "colour": 1}}},
         "tenants.x.colour"),
        ({"tenants": {"x": {"role": "boss", "api_keys_env": "TEAM_A_KEYS"}}}, "tenants.x.role"),
        ({"tenants": {"x": {"role": "runner"}}}, "tenants"),
        ({"tenants": {"x": {"api_keys_env": "TEAM_A_KEYS", "quotas": {"max_active_runs": 0}}}},
         "tenants.x.quotas.max_active_runs"),
        ({"client_providers": "everything"}, "client_providers"),
        ({"client_networks": ["not-a-net"]}, "client_networks[0]"),
        ({"datasets": {"roots": ["missing-folder"]}}, "datasets.roots[0]"),
    ],
)  # fmt: skip
def test_a_bad_field_is_named(tmp_path, override, field):
    with pytest.raises(SpecError) as err:
        settings_from_args({"config": str(write_config(tmp_path, **override))})
    assert err.value.field == field, err.value


def test_one_key_in_two_tenants_is_refused(tmp_path):
    config = write_config(
        tmp_path,
        tenants={"a": {"api_keys_env": "TEAM_A_KEYS"}, "b": {"api_keys_env": "TEAM_A_KEYS"}},
    )
    with pytest.raises(SpecError) as err:
        settings_from_args({"config": str(config)})
    assert "two tenants" in err.value.message
    assert "a-key" not in str(err.value)


def test_a_tenant_whose_variable_is_empty_cannot_start(tmp_path, monkeypatch):
    monkeypatch.setenv("TEAM_A_KEYS", " , ")
    with pytest.raises(SpecError) as err:
        settings_from_args({"config": str(write_config(tmp_path))})
    assert err.value.field == "tenants.team-a"


def test_bare_keys_stay_each_their_own_runner_tenant(monkeypatch):
    monkeypatch.setenv(KEYS_ENV, "k1,k2")
    keys = settings_from_args({}).api_keys
    one, two = keys.identify("k1"), keys.identify("k2")
    assert isinstance(one, Principal) and isinstance(two, Principal)
    assert one.tenant != two.tenant and one.role == two.role == "runner"


def test_aliases_in_the_config_file_are_refused(tmp_path):
    path = tmp_path / "serve.yaml"
    path.write_text("x: &x {role: admin}\ntenants: {a: *x}\n")
    with pytest.raises(SpecError):
        settings_from_args({"config": str(path)})


def test_roles_rank_and_visibility():
    from evalcluster.serve.config import Quotas

    viewer = Principal("t", "viewer", Quotas(), "k")
    admin = Principal("ops", "admin", Quotas(), "k")
    assert not viewer.can("runner") and viewer.can("viewer")
    assert viewer.sees("t") and not viewer.sees("u") and not viewer.sees(None)
    assert admin.sees("u") and admin.sees(None) and admin.can("runner")
