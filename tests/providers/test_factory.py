from __future__ import annotations

import pytest

from evalcluster.errors import SpecError
from evalcluster.providers import build_adapter
from evalcluster.providers.anthropic import AnthropicAdapter
from evalcluster.providers.factory import SIMULATOR_KEY
from evalcluster.providers.gemini import GeminiAdapter
from evalcluster.providers.local import LocalAdapter
from evalcluster.providers.openai import OpenAIAdapter
from evalcluster.providers.openrouter import OpenRouterAdapter
from evalcluster.providers.transport import PyreqwestTransport
from evalcluster.suite.models import ProviderConfig, SimulatorOptions

from .conftest import KEY


@pytest.mark.parametrize(
    ("kind", "cls", "base_url"),
    [("openai", OpenAIAdapter, "https://api.openai.com/v1"),
     ("openrouter", OpenRouterAdapter, "https://openrouter.ai/api/v1"),
     ("anthropic", AnthropicAdapter, "https://api.anthropic.com"),
     ("gemini", GeminiAdapter, "https://generativelanguage.googleapis.com")],
)  # fmt: skip
def test_each_kind_gets_its_adapter_and_the_sdk_default_base_url(
    kind: str, cls: type, base_url: str, api_key: str
) -> None:
    adapter = build_adapter("p", ProviderConfig(kind=kind, api_key_env="EVALCLUSTER_TEST_KEY"))
    assert type(adapter) is cls
    assert adapter.base_url == base_url
    assert isinstance(adapter.transport, PyreqwestTransport)
    assert adapter.transport.max_connections == 64


@pytest.mark.parametrize(
    ("kind", "variable"),
    [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY"),
     ("gemini", "GEMINI_API_KEY"), ("openrouter", "OPENROUTER_API_KEY")],
)  # fmt: skip
def test_missing_key_names_the_provider_and_the_sdk_variable(
    kind: str, variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(variable, raising=False)
    with pytest.raises(SpecError) as info:
        build_adapter("prod-model", ProviderConfig(kind=kind))
    assert "prod-model" in str(info.value) and variable in str(info.value)


def test_missing_named_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEAM_OPENAI_KEY", raising=False)
    with pytest.raises(SpecError, match="TEAM_OPENAI_KEY"):
        build_adapter("p", ProviderConfig(kind="openai", api_key_env="TEAM_OPENAI_KEY"))


def test_key_from_file(tmp_path) -> None:
    path = tmp_path / "key.txt"
    path.write_text(KEY + "\n")
    adapter = build_adapter("p", ProviderConfig(kind="anthropic", api_key_file=str(path)))
    assert adapter.api_key == KEY


def test_key_is_in_no_repr_or_str_of_the_adapter(api_key: str) -> None:
    adapter = build_adapter("p", ProviderConfig(kind="openai", api_key_env="EVALCLUSTER_TEST_KEY"))
    assert adapter.api_key == api_key
    for shown in (repr(adapter), str(adapter), repr(vars(adapter)), repr(adapter.transport)):
        assert api_key not in shown
    assert repr(adapter) == "OpenAIAdapter(name='p', base_url='https://api.openai.com/v1')"


def test_local_needs_no_key_and_keeps_its_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = build_adapter(
        "vllm", ProviderConfig(kind="local", base_url="http://localhost:8000/v1/")
    )
    assert type(adapter) is LocalAdapter
    assert adapter.base_url == "http://localhost:8000/v1"
    assert adapter.api_key is None


def test_local_refuses_a_metadata_address() -> None:
    config = ProviderConfig(kind="local", base_url="http://169.254.169.254/v1")
    with pytest.raises(SpecError, match="link-local"):
        build_adapter("evil", config)
    config = config.model_copy(update={"allow_private_network": True})
    assert build_adapter("evil", config).base_url == "http://169.254.169.254/v1"


def test_openai_kind_does_not_guard_its_base_url(api_key: str) -> None:
    # The guard is for suite-declared arbitrary servers (local, custom); it still checks scheme.
    with pytest.raises(SpecError, match="not an http"):
        build_adapter(
            "p",
            ProviderConfig(kind="openai", base_url="ftp://x", api_key_env="EVALCLUSTER_TEST_KEY"),
        )


@pytest.mark.parametrize(
    ("fmt", "cls"),
    [("openai", OpenAIAdapter), ("anthropic", AnthropicAdapter), ("gemini", GeminiAdapter)],
)
def test_simulated_uses_the_adapter_of_its_format_with_a_placeholder_key(
    fmt: str, cls: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(variable, raising=False)
    config = ProviderConfig(
        kind="simulated", base_url="http://127.0.0.1:9/v1", simulator=SimulatorOptions(format=fmt)
    )
    adapter = build_adapter("sim", config)
    assert type(adapter) is cls
    assert adapter.api_key == SIMULATOR_KEY


def test_simulated_without_base_url_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="base_url"):
        build_adapter("sim", ProviderConfig(kind="simulated"))


def test_max_concurrency_sizes_the_pool(api_key: str) -> None:
    config = ProviderConfig(kind="openai", api_key_env="EVALCLUSTER_TEST_KEY", max_concurrency=7)
    assert build_adapter("p", config).transport.max_connections == 7


@pytest.mark.anyio
async def test_adapter_closes_only_a_transport_it_owns(api_key: str) -> None:
    from evalcluster.providers.transport import MockTransport

    shared = MockTransport(lambda r: None)  # type: ignore[arg-type, return-value]
    config = ProviderConfig(kind="openai", api_key_env="EVALCLUSTER_TEST_KEY")
    await build_adapter("p", config, transport=shared).aclose()
    assert not shared.closed
