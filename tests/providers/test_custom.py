"""Custom HTTP providers: templates, paths, key substitution, URL guard (mock transport)."""

from __future__ import annotations

from typing import Any

import pytest

from evalcluster.errors import ProtocolError, ServerError, SpecError
from evalcluster.providers import build_adapter
from evalcluster.providers.base import FinishReason, Usage
from evalcluster.providers.custom import fill_template, lookup_path
from evalcluster.suite.models import CustomHttpConfig, ProviderConfig

from .conftest import ask, mocked, reply, sent

pytestmark = pytest.mark.anyio


def _custom(**overrides: Any) -> CustomHttpConfig:
    spec: dict[str, Any] = {
        "url": "http://127.0.0.1:7000/generate/{model}",
        "headers": {"X-Key": "Token {api_key}"},
        "body_template": {"inputs": "{prompt}", "system": "{system}", "chat": "{messages}",
                          "parameters": {"max_new_tokens": "{max_tokens}",
                                         "temperature": "{temperature}",
                                         "label": "model={model}, t={temperature}"}},
        "text_path": "outputs.0.text",
        "input_tokens_path": "meta.tokens.in",
        "output_tokens_path": "meta.tokens.out",
        "finish_reason_path": "outputs.0.finish",
    }  # fmt: skip
    spec.update(overrides)
    return CustomHttpConfig(**spec)


_OK = {"outputs": [{"text": "5", "finish": "length"}], "meta": {"tokens": {"in": 11, "out": 1}}}


async def test_template_is_filled_and_paths_are_read(api_key: str) -> None:
    adapter, transport = mocked("custom", reply(200, _OK), custom=_custom())
    completion = await adapter.complete(ask("Q?", system="S", model="my/model", max_tokens=9,
                                            temperature=0.5))  # fmt: skip
    call = sent(transport)
    assert call.url == "http://127.0.0.1:7000/generate/my%2Fmodel"
    assert call.headers["X-Key"] == f"Token {api_key}"
    assert call.json() == {
        "inputs": "Q?",
        "system": "S",
        "chat": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q?"}],
        "parameters": {"max_new_tokens": 9, "temperature": 0.5, "label": "model=my/model, t=0.5"},
    }
    assert completion.text == "5" and completion.finish_reason is FinishReason.LENGTH
    assert completion.usage == Usage(11, 1)


async def test_missing_counts_are_estimated_and_missing_text_is_a_protocol_error(
    api_key: str,
) -> None:
    spec = _custom(input_tokens_path=None, output_tokens_path="nope", finish_reason_path=None)
    adapter, _ = mocked("custom", reply(200, {"outputs": [{"text": "abcdefgh"}]}), custom=spec)
    completion = await adapter.complete(ask("x" * 12))
    assert completion.usage == Usage(3, 2, estimated=True)
    assert completion.finish_reason is FinishReason.STOP
    adapter, _ = mocked("custom", reply(200, {"outputs": []}), custom=_custom())
    with pytest.raises(ProtocolError, match="outputs.0.text"):
        await adapter.complete(ask())


async def test_get_method_sends_no_body(api_key: str) -> None:
    adapter, transport = mocked("custom", reply(200, _OK), custom=_custom(method="GET"))
    await adapter.complete(ask())
    assert sent(transport).method == "GET" and sent(transport).body is None


async def test_error_statuses_map_through_the_common_table(api_key: str) -> None:
    adapter, _ = mocked("custom", reply(503, {"error": "busy"}), custom=_custom())
    with pytest.raises(ServerError, match="busy"):
        await adapter.complete(ask())


def test_key_placeholder_without_a_configured_key_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="api_key"):
        build_adapter("c", ProviderConfig(kind="custom", custom=_custom()))


def test_no_key_needed_when_headers_do_not_use_it() -> None:
    adapter = build_adapter("c", ProviderConfig(kind="custom", custom=_custom(headers={})))
    assert adapter.api_key is None


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/api/token", "http://[fd00:ec2::254]/x",
            "http://metadata.google.internal/computeMetadata/v1/"],
)  # fmt: skip
def test_ssrf_targets_are_refused(url: str) -> None:
    config = ProviderConfig(kind="custom", custom=_custom(url=url, headers={}))
    with pytest.raises(SpecError, match="link-local or cloud metadata") as info:
        build_adapter("c", config)
    assert info.value.field == "providers.c.custom.url"
    allowed = config.model_copy(update={"allow_private_network": True})
    assert build_adapter("c", allowed).base_url == url


def test_templated_host_is_refused() -> None:
    config = ProviderConfig(kind="custom", custom=_custom(url="http://{model}/x", headers={}))
    with pytest.raises(SpecError, match="cannot be a template"):
        build_adapter("c", config)


def test_fill_template_and_lookup_path() -> None:
    values = {"prompt": "p", "system": None, "model": "m", "messages": [], "max_tokens": None,
              "temperature": None}  # fmt: skip
    assert fill_template({"a": ["{prompt}", 3, "{system}", "x{system}y"]}, values) == {
        "a": ["p", 3, None, "xy"]
    }
    assert fill_template("{unknown}", values) == "{unknown}"
    data = {"a": [{"b": {"c": 7}}]}
    assert lookup_path(data, "a.0.b.c") == 7
    assert lookup_path(data, "a.1.b") is lookup_path(data, "x") is lookup_path(data, "a.z")


# --- over real HTTP, against the simulator ---------------------------------------------------


async def test_http_custom_provider_declared_over_the_openai_route(sim, api_key: str) -> None:
    from evalcluster.simulator import count_tokens

    from .conftest import sim_answer, sim_input_tokens

    spec = CustomHttpConfig(
        url=sim.url + "/v1/chat/completions",
        headers={"Authorization": "Bearer {api_key}"},
        body_template={"model": "{model}", "messages": "{messages}", "max_tokens": "{max_tokens}"},
        text_path="choices.0.message.content",
        input_tokens_path="usage.prompt_tokens",
        output_tokens_path="usage.completion_tokens",
        finish_reason_path="choices.0.finish_reason",
    )
    config = ProviderConfig(kind="custom", custom=spec, api_key_env="EVALCLUSTER_TEST_KEY")
    adapter = build_adapter("c", config)
    request = ask("What is 9 * 9? Answer with the number only.", system="Calc.", max_tokens=8)
    try:
        completion = await adapter.complete(request)
    finally:
        await adapter.aclose()
    assert completion.text == sim_answer(request) == "81"
    assert completion.usage == Usage(sim_input_tokens(request), count_tokens("81"))
    assert completion.finish_reason is FinishReason.STOP
