"""Submission rules: what a suite that arrives over HTTP may define, and how it is parsed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from evalcluster.errors import SpecError
from evalcluster.suite.datasets import DatasetRef
from evalcluster.suite.loader import load_suite_text, parse_yaml
from evalcluster.suite.models import ProviderConfig
from evalcluster.suite.rules import MAX_NESTING, SubmissionRules, check_nesting

REGISTRY = {
    "op-openai": ProviderConfig(kind="openai", base_url="http://10.0.0.5/v1", api_key_env="K")
}


class FixedDataset:
    """A resolver that hands out one file, whatever is asked."""

    def __init__(self, path: Path):
        self.path = path
        self.asked: list[str] = []

    def resolve(self, path: str, declared_format: str | None) -> DatasetRef:
        self.asked.append(path)
        return DatasetRef(str(self.path), "jsonl", label=path)


@pytest.fixture
def data(tmp_path: Path) -> FixedDataset:
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "a", "input": "1 + 1", "target": "2"}\n')
    return FixedDataset(path)


def suite(providers: dict | None = None, **extra) -> str:
    doc = {
        "name": "s",
        "dataset": {"path": "dataset:mine", "id": "id"},
        "prompt": "{input}",
        "scorers": [{"type": "exact"}],
        "targets": [{"name": "t", "provider": "op-openai", "model": "m"}],
        "providers": providers or {},
        **extra,
    }
    return yaml.safe_dump(doc)


def load(text: str, rules: SubmissionRules):
    return load_suite_text(text, location="http", base_dir=Path("/nonexistent"), rules=rules)


def test_registry_providers_are_usable_and_the_dataset_goes_through_the_resolver(data):
    loaded = load(suite(), SubmissionRules(registry=REGISTRY, datasets=data))
    assert loaded.spec.providers["op-openai"].api_key_env == "K"
    assert not loaded.spec.providers["op-openai"].from_client
    assert data.asked == ["dataset:mine"]


def test_only_the_registry_providers_a_suite_reaches_become_part_of_it(data):
    registry = {
        **REGISTRY,
        "op-backup": ProviderConfig(kind="simulated"),
        "op-unused": ProviderConfig(kind="simulated"),
    }
    registry["op-openai"] = registry["op-openai"].model_copy(update={"fallback": ["op-backup"]})
    loaded = load(suite(), SubmissionRules(registry=registry, datasets=data))
    assert set(loaded.spec.providers) == {"op-openai", "op-backup"}


def test_deny_refuses_a_suite_defined_endpoint_naming_it(data):
    own = {"mine": {"kind": "local", "base_url": "http://example.com/v1"}}
    with pytest.raises(SpecError) as err:
        load(suite(own), SubmissionRules(registry=REGISTRY, datasets=data))
    assert err.value.field == "providers.mine"
    assert "op-openai" in err.value.message  # says what it may use instead


def test_a_suite_cannot_redefine_a_registry_provider(data):
    again = {"op-openai": {"kind": "openai", "base_url": "http://attacker.example/v1"}}
    rules = SubmissionRules(registry=REGISTRY, client_providers="no_secrets", datasets=data)
    with pytest.raises(SpecError) as err:
        load(suite(again), rules)
    assert err.value.field == "providers.op-openai"


@pytest.mark.parametrize("key_field", ["api_key_env", "api_key_file"])
def test_no_suite_defined_provider_may_name_a_server_key(data, key_field):
    own = {"mine": {"kind": "simulated", key_field: "AWS_SECRET_ACCESS_KEY"}}
    rules = SubmissionRules(registry=REGISTRY, client_providers="no_secrets", datasets=data)
    with pytest.raises(SpecError) as err:
        load(suite(own), rules)
    assert err.value.field == f"providers.mine.{key_field}"


def test_no_secrets_marks_own_endpoints_from_client_whatever_the_suite_says(data):
    own = {
        "mine": {
            "kind": "local",
            "base_url": "http://example.com/v1",
            "from_client": False,
            "client_networks": ["0.0.0.0/0"],
        }
    }
    rules = SubmissionRules(
        registry=REGISTRY,
        client_providers="no_secrets",
        client_networks=("192.0.2.0/24",),
        datasets=data,
    )
    loaded = load(suite(own).replace("provider: op-openai", "provider: mine"), rules)
    mine = loaded.spec.providers["mine"]
    assert mine.from_client is True
    assert mine.client_networks == ["192.0.2.0/24"]


def test_the_network_guard_cannot_be_switched_off_by_a_suite(data):
    own = {
        "mine": {"kind": "local", "base_url": "http://x.example/v1", "allow_private_network": True}
    }
    rules = SubmissionRules(registry=REGISTRY, client_providers="no_secrets", datasets=data)
    with pytest.raises(SpecError) as err:
        load(suite(own), rules)
    assert err.value.field == "providers.mine.allow_private_network"


def test_a_run_started_simulator_is_allowed_even_under_deny(data):
    own = {"sim": {"kind": "simulated", "from_client": True}}
    text = suite(own).replace("provider: op-openai", "provider: sim")
    loaded = load(text, SubmissionRules(registry=REGISTRY, datasets=data))
    assert loaded.spec.providers["sim"].from_client is False  # the run's own, on loopback


def test_a_submitted_suite_cannot_load_a_providers_file(data):
    with pytest.raises(SpecError) as err:
        load(
            suite(providers_file="/etc/evalcluster/providers.yaml"), SubmissionRules(datasets=data)
        )
    assert err.value.field == "providers_file"


def test_without_a_resolver_no_dataset_path_is_read(tmp_path):
    with pytest.raises(SpecError) as err:
        load(suite(), SubmissionRules(registry=REGISTRY))
    assert err.value.field == "dataset.path"


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"


def test_yaml_aliases_are_refused_for_submitted_suites_but_not_for_local_files(data):
    with pytest.raises(SpecError) as err:
        load(ALIAS_BOMB, SubmissionRules(datasets=data))
    assert "alias" in err.value.message or "anchor" in err.value.message
    assert parse_yaml(ALIAS_BOMB, "local.yaml")["b"][0][0] == "x"


def test_nesting_past_the_limit_is_refused_without_recursion():
    deep: dict = {}
    node = deep
    for _ in range(100_000):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(SpecError) as err:
        check_nesting(deep, field="suite")
    assert err.value.field == "suite" and str(MAX_NESTING) in err.value.message
    check_nesting({"a": [[{"b": 1}]]})  # shallow is fine


def test_deep_yaml_is_a_spec_error_not_a_crash():
    text = "a: " + "[" * 5000 + "]" * 5000
    with pytest.raises(SpecError):
        parse_yaml(text, "http", allow_aliases=False)
