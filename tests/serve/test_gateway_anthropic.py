"""`POST /v1/messages`: the gateway in Anthropic's Messages format, driven with the official
`anthropic` SDK against a real Serve deployment, with the project's simulator behind the
provider actors in OpenAI, Anthropic and Gemini formats. Also the service middleware's 413 and
503 in each gateway route's own error shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from evalcluster.simulator import SimulatorThread
from tests.serve.conftest import Service, free_port
from tests.serve.gateway_app import gateway_rows, serve_app, write_service_config

pytestmark = pytest.mark.timeout(300)

KEYS = {
    "team-a": "gw-anth-key-team-a-CANARY-61aa",
    "broke": "gw-anth-key-broke-CANARY-62bb",
    "viewer": "gw-anth-key-viewer-CANARY-63cc",
}
APP = "gateway-anthropic-tests"
PREFIX = "/gwa"
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
ROUTES = ("sim/openai", "sim/claude", "sim/gemini")


@dataclass(frozen=True)
class Gateway:
    url: str  # the service's root for this app: .../gwa (the SDK adds /v1/messages)
    store: Path

    def client(self, tenant: str = "team-a", **kwargs: Any) -> anthropic.Anthropic:
        kwargs.setdefault("max_retries", 0)
        return anthropic.Anthropic(base_url=self.url, api_key=KEYS[tenant], **kwargs)


def _write_config(folder: Path, sim_url: str, store: Path) -> Path:
    pricing = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there

    def sim(wire: str, url: str, **extra: Any) -> dict[str, Any]:
        return {
            "kind": "simulated",
            "base_url": url,
            "pricing": pricing,
            "simulator": {"format": wire, "latency_ms": 0, "accuracy": 1.0},
            **extra,
        }

    providers = {
        "gwa-openai": sim("openai", sim_url + "/v1"),
        "gwa-claude": sim("anthropic", sim_url),
        "gwa-gemini": sim("gemini", sim_url),
        "gwa-down": sim("anthropic", dead, retry={"max_attempts": 1}),
    }  # fmt: skip
    config = {
        "tenants": {
            "team-a": {"role": "runner", "api_keys_file": "team-a.keys"},
            "broke": {"role": "runner", "api_keys_file": "broke.keys",
                      "quotas": {"gateway_budget_usd_per_day": 0}},
            "viewer": {"role": "viewer", "api_keys_file": "viewer.keys"},
        },
        "providers_file": "providers.yaml",
        "store_uri": str(store),
        "tracking_uri": "none",
        "max_body_bytes": 32 * 1024,
        "gateway": {
            "rows_flush_s": 0.3,
            "routes": {
                "sim/openai": {"provider": "gwa-openai", "model": "sim-1"},
                "sim/claude": {"provider": "gwa-claude", "model": "sim-1"},
                "sim/gemini": {"provider": "gwa-gemini", "model": "sim-1"},
                "down/claude": {"provider": "gwa-down", "model": "m"},
            },
        },
    }  # fmt: skip
    return write_service_config(folder, KEYS, providers, config)


@pytest.fixture(scope="module")
def gateway(service: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("gateway-anthropic")
    store = folder / "store"
    with SimulatorThread() as sim, serve_app(_write_config(folder, sim.url, store), APP, PREFIX):
        yield Gateway(f"{service.url}{PREFIX}", store)


@pytest.mark.parametrize("route", ROUTES)
def test_sync_message_through_each_wire_format(gateway: Gateway, route: str) -> None:
    message = gateway.client().messages.create(
        model=route,
        max_tokens=32,
        system="Answer with the number only.",
        messages=[{"role": "user", "content": "What is 2 + 3?"}],
        extra_body={"temperature": 0},  # this SDK's create() has no temperature argument
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.model == route
    assert message.content[0].type == "text" and message.content[0].text.strip() == "5"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert message.id.startswith("msg_")


def test_streaming_sends_anthropics_events(gateway: Gateway) -> None:
    client = gateway.client()
    with client.messages.stream(
        model="sim/claude", max_tokens=32,
        messages=[{"role": "user", "content": "What is 20 + 22?"}],
    ) as stream:  # fmt: skip
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.strip() == "42"
    assert final.content[0].text.strip() == "42" and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    raw = client.messages.create(
        model="sim/openai", max_tokens=32, stream=True,
        messages=[{"role": "user", "content": "What is 1 + 1?"}],
    )  # fmt: skip
    kinds = [event.type for event in raw]
    assert kinds == ["message_start", "content_block_start", "content_block_delta",
                     "content_block_stop", "message_delta", "message_stop"]  # fmt: skip


@pytest.mark.parametrize("route", ROUTES)
def test_tool_use_round_trip(gateway: Gateway, route: str) -> None:
    client = gateway.client()
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.messages.create(
        model=route, max_tokens=64, messages=messages, tools=[WEATHER],
        tool_choice={"type": "auto"},
    )  # fmt: skip
    assert first.stop_reason == "tool_use"
    (use,) = [b for b in first.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.input == {"input": "Weather in Paris?"}
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": use.id, "content": '{"celsius": 21}'}]},
    ]  # fmt: skip
    second = client.messages.create(model=route, max_tokens=64, messages=messages, tools=[WEATHER])
    assert second.stop_reason == "end_turn"
    assert [b.type for b in second.content] == ["text"] and second.content[0].text
    with client.messages.stream(
        model=route, max_tokens=64, messages=messages[:1], tools=[WEATHER]
    ) as stream:
        streamed = stream.get_final_message()
    assert streamed.stop_reason == "tool_use"
    assert streamed.content[0].type == "tool_use"
    assert streamed.content[0].input == {"input": "Weather in Paris?"}


def _error_type(err: anthropic.APIStatusError) -> str:
    body = err.response.json()
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
    return body["error"]["type"]


def test_errors_are_anthropic_shaped_with_the_sdks_exceptions(gateway: Gateway) -> None:
    ask = {"max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}
    bad = anthropic.Anthropic(base_url=gateway.url, api_key="sk-ant-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as auth:
        bad.messages.create(model="sim/claude", **ask)
    assert _error_type(auth.value) == "authentication_error"
    with pytest.raises(anthropic.PermissionDeniedError) as role:
        gateway.client("viewer").messages.create(model="sim/claude", **ask)
    assert _error_type(role.value) == "permission_error"
    with pytest.raises(anthropic.NotFoundError) as missing:
        gateway.client().messages.create(model="nope/nothing", **ask)
    assert _error_type(missing.value) == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as invalid:
        gateway.client().messages.create(
            model="sim/claude",
            max_tokens=8,
            messages=ask["messages"],
            extra_body={"temperature": 3},
        )
    assert _error_type(invalid.value) == "invalid_request_error"
    assert "temperature" in invalid.value.message
    with pytest.raises(anthropic.RateLimitError) as broke:
        gateway.client("broke", max_retries=3).messages.create(model="sim/claude", **ask)
    assert _error_type(broke.value) == "rate_limit_error"
    assert "budget" in broke.value.message
    assert broke.value.response.headers["x-should-retry"] == "false"
    with pytest.raises(anthropic.InternalServerError) as down:
        gateway.client().messages.create(model="down/claude", **ask)
    assert down.value.status_code == 503
    assert int(down.value.response.headers["retry-after"]) >= 1
    assert _error_type(down.value) in ("api_error", "overloaded_error")


def test_missing_max_tokens_is_400_naming_it(gateway: Gateway) -> None:
    answer = httpx.post(
        f"{gateway.url}/v1/messages",
        headers={"x-api-key": KEYS["team-a"], "anthropic-version": "2023-06-01"},
        json={"model": "sim/claude", "messages": [{"role": "user", "content": "x"}]},
        timeout=30,
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == {
        "type": "invalid_request_error",
        "message": answer.json()["error"]["message"],
    }
    assert answer.json()["error"]["message"].startswith("max_tokens")


def test_bearer_token_works_too_and_calls_are_rows(gateway: Gateway) -> None:
    before = len(gateway_rows(gateway.store, "team-a", want=0))
    client = anthropic.Anthropic(base_url=gateway.url, auth_token=KEYS["team-a"], max_retries=0)
    message = client.messages.create(
        model="sim/gemini", max_tokens=16, messages=[{"role": "user", "content": "What is 3 + 3?"}]
    )
    assert message.content[0].text.strip() == "6"
    rows = gateway_rows(gateway.store, "team-a", want=before + 1)
    mine = [r for r in rows if r["model"] == "sim/gemini" and r["status"] == 200]
    assert mine and mine[-1]["served_by"] == "gwa-gemini" and mine[-1]["input_tokens"] > 0


def test_too_large_bodies_are_413_in_each_routes_shape(gateway: Gateway) -> None:
    big = "x" * 40_000
    with pytest.raises(anthropic.APIStatusError) as err:
        gateway.client().messages.create(
            model="sim/claude", max_tokens=8, messages=[{"role": "user", "content": big}]
        )
    assert err.value.status_code == 413
    assert _error_type(err.value) == "request_too_large"
    headers = {"Authorization": f"Bearer {KEYS['team-a']}"}
    body = {"model": "sim/openai", "messages": [{"role": "user", "content": big}]}
    openai_shaped = httpx.post(
        f"{gateway.url}/v1/chat/completions", json=body, headers=headers, timeout=30
    )
    assert openai_shaped.status_code == 413
    error = openai_shaped.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is met while reading
        yield b'{"model": "sim/claude", "max_tokens": 8, "messages": [{"role": "user", '
        yield b'"content": "' + big.encode() + b'"}]}'

    chunked = httpx.post(
        f"{gateway.url}/v1/messages", content=chunks(),
        headers={"x-api-key": KEYS["team-a"], "content-type": "application/json"}, timeout=30,
    )  # fmt: skip
    assert chunked.status_code == 413
    assert chunked.json()["error"]["type"] == "request_too_large"
    # The service's own routes keep the service's shape.
    own = httpx.post(
        f"{gateway.url}/v1/suites",
        content=json.dumps({"x": big}),
        headers={**headers, "content-type": "application/json"},
        timeout=30,
    )
    assert own.status_code == 413 and own.json()["error"] == "payload_too_large"
