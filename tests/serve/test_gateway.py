"""The OpenAI-compatible gateway, driven with the official `openai` SDK against a real Serve
deployment (its own application on the package's Serve instance, with its own configuration)
and the project's simulator over real HTTP behind the provider actors."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from evalcluster.simulator import SimulatorThread
from tests.serve.conftest import Service, free_port
from tests.serve.gateway_app import gateway_rows, serve_app, write_service_config

pytestmark = pytest.mark.timeout(300)

KEYS = {
    "team-a": "gw-key-team-a-CANARY-11aa",
    "team-b": "gw-key-team-b-CANARY-22bb",
    "broke": "gw-key-broke-CANARY-33cc",
    "viewer": "gw-key-viewer-CANARY-44dd",
    "ops": "gw-key-ops-CANARY-55ee",
}
APP = "gateway-tests"
PREFIX = "/gw"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@dataclass(frozen=True)
class Gateway:
    base_url: str  # what the SDK calls base_url: .../gw/v1
    store: Path
    providers_file: Path
    slow_sim: SimulatorThread

    def client(self, tenant: str = "team-a", **kwargs: Any) -> openai.OpenAI:
        kwargs.setdefault("max_retries", 0)
        return openai.OpenAI(base_url=self.base_url, api_key=KEYS[tenant], **kwargs)

    def aclient(self, tenant: str = "team-a") -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=KEYS[tenant], max_retries=0)

    def http(self, tenant: str = "team-a") -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {KEYS[tenant]}"}, timeout=30
        )


def _write_config(folder: Path, sim_url: str, slow_url: str, store: Path) -> Path:
    sim = {"format": "openai", "latency_ms": 0, "accuracy": 1.0}
    pricing = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    providers = {
        "gw-sim": {"kind": "simulated", "base_url": sim_url + "/v1", "simulator": sim,
                   "pricing": pricing, "max_concurrency": 16},
        "gw-slow": {"kind": "simulated", "base_url": slow_url + "/v1", "simulator": sim,
                    "pricing": pricing, "max_concurrency": 1, "timeout_s": 120},
        "gw-down": {"kind": "simulated", "base_url": dead, "simulator": sim,
                    "retry": {"max_attempts": 1}, "fallback": ["gw-down-2"]},
        "gw-down-2": {"kind": "simulated", "base_url": dead, "simulator": sim,
                      "retry": {"max_attempts": 1}},
        "gw-broken": {"kind": "openai", "base_url": dead, "api_key_env": "GW_UNSET_KEY_VAR"},
    }  # fmt: skip
    runner = {"role": "runner"}
    config = {
        "tenants": {
            "team-a": {**runner, "api_keys_file": "team-a.keys",
                       "quotas": {"gateway_budget_usd_per_day": 5.0}},
            "team-b": {**runner, "api_keys_file": "team-b.keys",
                       "quotas": {"gateway_routes": ["sim/sim-1", "sim/cached"]}},
            "broke": {**runner, "api_keys_file": "broke.keys",
                      "quotas": {"gateway_budget_usd_per_day": 0}},
            "viewer": {"role": "viewer", "api_keys_file": "viewer.keys"},
            "ops": {"role": "admin", "api_keys_file": "ops.keys"},
        },
        "providers_file": "providers.yaml",
        "store_uri": str(store),
        "tracking_uri": "none",
        "max_body_bytes": 64 * 1024,
        "gateway": {
            "rows_flush_s": 0.3,
            "routes": {
                "sim/sim-1": {"provider": "gw-sim", "model": "sim-1"},
                "sim/cached": {"provider": "gw-sim", "model": "sim-1", "cache": True},
                "slow/sim-1": {"provider": "gw-slow", "model": "sim-1"},
                "down/model": {"provider": "gw-down", "model": "m"},
                "broken/model": {"provider": "gw-broken", "model": "m"},
            },
        },
    }  # fmt: skip
    return write_service_config(folder, KEYS, providers, config)


@pytest.fixture(scope="module")
def gateway(service: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("gateway")
    store = folder / "store"
    with SimulatorThread() as sim, SimulatorThread(latency_ms=30_000) as slow:
        config = _write_config(folder, sim.url, slow.url, store)
        with serve_app(config, APP, PREFIX):
            yield Gateway(f"{service.url}{PREFIX}/v1", store, folder / "providers.yaml", slow)


def test_models_lists_the_routes_a_tenant_may_call(gateway: Gateway) -> None:
    assert {m.id for m in gateway.client("team-a").models.list()} == {
        "sim/sim-1",
        "sim/cached",
        "slow/sim-1",
        "down/model",
        "broken/model",
    }
    assert {m.id for m in gateway.client("team-b").models.list()} == {"sim/sim-1", "sim/cached"}


def test_sync_completion_answers_through_the_provider_actor(gateway: Gateway) -> None:
    completion = gateway.client().chat.completions.create(
        model="sim/sim-1",
        messages=[
            {"role": "system", "content": "Answer with the number only."},
            {"role": "user", "content": "What is 2 + 3?"},
        ],
        temperature=0,
        max_tokens=16,
    )
    assert completion.object == "chat.completion"
    assert completion.model == "sim/sim-1"
    assert completion.choices[0].message.content.strip() == "5"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0


def test_async_client_gets_every_answer(gateway: Gateway) -> None:
    async def main() -> list[str]:
        async with gateway.aclient() as client:
            answers = await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model="sim/sim-1",
                        messages=[{"role": "user", "content": f"What is {i} + 10?"}],
                        temperature=0,
                    )
                    for i in range(12)
                )
            )
        return [a.choices[0].message.content.strip() for a in answers]

    assert asyncio.run(main()) == [str(i + 10) for i in range(12)]


def test_streaming_sends_chunks_usage_and_done(gateway: Gateway) -> None:
    stream = gateway.client().chat.completions.create(
        model="sim/sim-1",
        messages=[{"role": "user", "content": "What is 20 + 22?"}],
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == "42"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    with gateway.http() as http:
        raw = http.post(
            "/chat/completions",
            json={"model": "sim/sim-1", "stream": True,
                  "messages": [{"role": "user", "content": "What is 1 + 1?"}]},
        )  # fmt: skip
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.text.rstrip().endswith("data: [DONE]")


def test_tool_call_round_trip(gateway: Gateway) -> None:
    client = gateway.client()
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(
        model="sim/sim-1", messages=messages, tools=[WEATHER_TOOL], tool_choice="auto"
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments)["input"] == "Weather in Paris?"
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"celsius": 21}'},
    ]
    second = client.chat.completions.create(
        model="sim/sim-1", messages=messages, tools=[WEATHER_TOOL]
    )
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.tool_calls is None
    assert second.choices[0].message.content
    streamed = list(
        client.chat.completions.create(
            model="sim/sim-1", messages=messages[:1], tools=[WEATHER_TOOL], stream=True
        )
    )
    deltas = [c.choices[0].delta.tool_calls for c in streamed if c.choices[0].delta.tool_calls]
    assert deltas[0][0].function.name == "get_weather"


def test_unknown_model_is_404_model_not_found(gateway: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        gateway.client().chat.completions.create(
            model="nope/nothing", messages=[{"role": "user", "content": "hi"}]
        )
    assert err.value.code == "model_not_found"
    # A route the tenant may not use reads exactly as one that does not exist.
    with pytest.raises(openai.NotFoundError):
        gateway.client("team-b").chat.completions.create(
            model="slow/sim-1", messages=[{"role": "user", "content": "hi"}]
        )


def test_bad_key_is_401_and_viewer_is_403(gateway: Gateway) -> None:
    bad = openai.OpenAI(base_url=gateway.base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        bad.chat.completions.create(model="sim/sim-1", messages=[{"role": "user", "content": "x"}])
    assert err.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    with pytest.raises(openai.PermissionDeniedError):
        gateway.client("viewer").chat.completions.create(
            model="sim/sim-1", messages=[{"role": "user", "content": "x"}]
        )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "sim/sim-1"}, "messages"),
        ({"model": "sim/sim-1", "messages": []}, "messages"),
        ({"model": "sim/sim-1", "messages": [{"role": "wizard", "content": "x"}]},
         "messages[0].role"),
        ({"model": "sim/sim-1", "messages": [{"role": "user", "content": "x"}],
          "temperature": 7}, "temperature"),
        ({"model": "sim/sim-1", "messages": [{"role": "user", "content": "x"}], "n": 3}, "n"),
        ({"model": "sim/sim-1", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://x"}}]}]}, "messages[0].content"),
    ],
)  # fmt: skip
def test_malformed_body_is_400_naming_the_field(
    gateway: Gateway, body: dict[str, Any], param: str
) -> None:
    with gateway.http() as http:
        answer = http.post("/chat/completions", json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert set(error) == {"message", "type", "code", "param"}


def test_not_json_and_too_large_bodies_are_refused(gateway: Gateway) -> None:
    with gateway.http() as http:
        answer = http.post(
            "/chat/completions", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert answer.status_code == 400 and answer.json()["error"]["message"]
        big = {"model": "sim/sim-1", "messages": [{"role": "user", "content": "x" * 70_000}]}
        assert http.post("/chat/completions", json=big).status_code == 413


def test_spent_budget_is_429_insufficient_quota_that_the_sdk_does_not_retry(
    gateway: Gateway,
) -> None:
    client = gateway.client("broke", max_retries=3)  # the SDK would retry a rate limit
    before = len(gateway_rows(gateway.store, "broke", want=0))
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(
            model="sim/sim-1", messages=[{"role": "user", "content": "x"}]
        )
    assert err.value.code == "insufficient_quota"
    assert err.value.type == "insufficient_quota"
    assert "budget" in err.value.message and "not a rate limit" in err.value.message
    assert "retry-after" not in err.value.response.headers
    assert err.value.response.headers["x-should-retry"] == "false"
    gateway_rows(gateway.store, "broke", want=before + 1)
    time.sleep(1.5)  # a retry would have been sent and logged by now
    rows = gateway_rows(gateway.store, "broke", want=0)
    assert len(rows) == before + 1  # one request reached the gateway: no retry
    assert all(r["error_kind"] == "budget_exhausted" and r["status"] == 429 for r in rows)


def test_provider_down_after_fallbacks_is_503_with_retry_after(gateway: Gateway) -> None:
    with pytest.raises(openai.InternalServerError) as err:
        gateway.client().chat.completions.create(
            model="down/model", messages=[{"role": "user", "content": "x"}]
        )
    assert err.value.status_code == 503
    assert int(err.value.response.headers["retry-after"]) >= 1
    assert err.value.body["type"] == "server_error"
    with pytest.raises(openai.InternalServerError) as err:  # its actor cannot even start
        gateway.client().chat.completions.create(
            model="broken/model", messages=[{"role": "user", "content": "x"}]
        )
    assert err.value.status_code == 503 and err.value.body["type"] == "server_error"


def test_response_cache_is_opt_in_and_per_tenant(gateway: Gateway) -> None:
    messages = [{"role": "user", "content": "What is 31 + 11? (cache test)"}]
    headers = {"x-evalcluster-cache": "use"}
    client = gateway.client()
    first = client.chat.completions.with_raw_response.create(
        model="sim/sim-1", messages=messages, temperature=0, extra_headers=headers
    )
    assert first.headers["x-evalcluster-cache"] == "miss"
    deadline = time.monotonic() + 10
    while True:
        again = client.chat.completions.with_raw_response.create(
            model="sim/sim-1", messages=messages, temperature=0, extra_headers=headers
        )
        if again.headers["x-evalcluster-cache"] == "hit" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert again.headers["x-evalcluster-cache"] == "hit"
    assert again.parse().choices[0].message.content == first.parse().choices[0].message.content
    other = gateway.client("team-b").chat.completions.with_raw_response.create(
        model="sim/sim-1", messages=messages, temperature=0, extra_headers=headers
    )
    assert other.headers["x-evalcluster-cache"] == "miss"  # team-a's answer is team-a's
    sampled = client.chat.completions.with_raw_response.create(
        model="sim/sim-1", messages=messages, temperature=0.7, extra_headers=headers
    )
    assert sampled.headers["x-evalcluster-cache"] == "miss"  # not deterministic: not cached


def test_usage_is_per_tenant_and_admins_see_all(gateway: Gateway) -> None:
    for tenant in ("team-a", "team-b"):
        gateway.client(tenant).chat.completions.create(
            model="sim/sim-1", messages=[{"role": "user", "content": f"usage {tenant}"}]
        )
    with gateway.http("team-a") as http:
        mine = http.get("/gateway/usage").json()
        assert http.get("/gateway/usage", params={"tenant": "team-b"}).status_code == 404
    assert {e["tenant"] for e in mine["data"]} == {"team-a"}
    assert mine["budget_usd_per_day"] == 5.0
    assert mine["spent_today_usd"] > 0
    assert sum(e["requests"] for e in mine["data"]) >= 2
    with gateway.http("ops") as http:
        everyone = http.get("/gateway/usage").json()
    assert {"team-a", "team-b"} <= {e["tenant"] for e in everyone["data"]}


def test_every_call_is_a_row_in_its_tenants_partition(gateway: Gateway) -> None:
    client = gateway.client("team-b")
    answer = client.chat.completions.with_raw_response.create(
        model="sim/sim-1", messages=[{"role": "user", "content": "SECRET-PROMPT-TEXT 4 + 4"}]
    )
    request_id = answer.headers["x-request-id"]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    deadline = time.monotonic() + 20
    while True:
        rows = gateway_rows(gateway.store, "team-b")
        mine = [r for r in rows if r["request_id"] == request_id]
        missing = not mine or not any(r["error_kind"] == "unknown_model" for r in rows)
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(mine) == 1, (request_id, [(r["request_id"], r["model"]) for r in rows])
    (row,) = mine
    assert row["tenant"] == "team-b" and row["model"] == "sim/sim-1"
    assert row["served_by"] == "gw-sim" and row["status"] == 200
    assert row["input_tokens"] > 0 and row["cost_usd"] > 0 and not row["cache_hit"]
    assert row["latency_ms"] > 0 and row["error_kind"] is None
    assert row["day"] == row["finished_at"].strftime("%Y-%m-%d")
    assert any(r["error_kind"] == "unknown_model" and r["status"] == 404 for r in rows)
    assert all(r["tenant"] == "team-b" for r in rows)
    files = list((gateway.store / "gateway").rglob("*.parquet"))
    assert files and all("tenant=" in str(f.parent.parent.name) for f in files)
    assert not any(b"SECRET-PROMPT-TEXT" in f.read_bytes() for f in files)
    assert not any(KEYS["team-b"].encode() in f.read_bytes() for f in files)


def _slow_actor(gateway: Gateway) -> Any:
    """The actor the gateway's replica uses for gw-slow (found by its name, or made now)."""
    import ray

    from evalcluster.actors.provider import provider_actor
    from evalcluster.suite.loader import load_providers_file

    actor = provider_actor("gw-slow", load_providers_file(gateway.providers_file, "providers"))
    ray.get(actor.ready.remote(), timeout=60)
    return actor


def _in_flight(actor: Any) -> int:
    import ray

    return ray.get(actor.status.remote(), timeout=10)["in_flight"]


def test_a_client_that_disconnects_mid_stream_frees_its_slot(
    gateway: Gateway, service: Service
) -> None:
    """gw-slow answers after 30 s and has one slot: a client that goes away must give the slot
    back at once, not when the provider answers."""
    body = json.dumps(
        {"model": "slow/sim-1", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    ).encode()
    port = int(service.url.rsplit(":", 1)[1])
    head = (
        f"POST {PREFIX}/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {KEYS['team-a']}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    actor = _slow_actor(gateway)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(head + body)
    deadline = time.monotonic() + 30
    while _in_flight(actor) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _in_flight(actor) == 1
    sock.close()
    deadline = time.monotonic() + 15  # far less than the 30 s the provider takes
    while _in_flight(actor) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _in_flight(actor) == 0
    rows = gateway_rows(gateway.store, "team-a", want=1)
    deadline = time.monotonic() + 10
    while not any(r["model"] == "slow/sim-1" for r in rows) and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = gateway_rows(gateway.store, "team-a")
    gone = [r for r in rows if r["model"] == "slow/sim-1"]
    assert gone and gone[0]["error_kind"] == "client_disconnected"
    assert gone[0]["status"] == 499 and gone[0]["provider"] == "gw-slow"


def _ok_count(gateway: Gateway, provider: str = "gw-sim") -> int:
    import ray

    from evalcluster.actors.provider import provider_actor
    from evalcluster.suite.loader import load_providers_file

    actor = provider_actor(provider, load_providers_file(gateway.providers_file, "providers"))
    return ray.get(actor.status.remote(), timeout=30)["outcomes"].get("ok", 0)


def test_an_inspect_ai_task_runs_through_the_gateway(
    gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real external harness: inspect_ai's OpenAI-compatible provider
    (``openai-api/<service>/<model>``). inspect_ai is not a dependency of the project."""
    pytest.importorskip("inspect_ai", reason="inspect_ai is not installed (pip install inspect-ai)")
    from inspect_ai import Task, eval
    from inspect_ai.dataset import Sample
    from inspect_ai.scorer import match
    from inspect_ai.solver import generate

    monkeypatch.setenv("EVALGW_API_KEY", KEYS["team-b"])
    monkeypatch.setenv("EVALGW_BASE_URL", gateway.base_url)
    samples = [Sample(input=f"What is {i} + 7?", target=str(i + 7)) for i in range(4)]
    before_ok = _ok_count(gateway)
    before = {r["request_id"] for r in gateway_rows(gateway.store, "team-b", want=0)}
    (log,) = eval(
        Task(dataset=samples, solver=generate(), scorer=match(numeric=True)),
        model="openai-api/evalgw/sim/sim-1",
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    assert log.status == "success", log.error
    assert log.results.scores[0].metrics["accuracy"].value == 1.0
    assert _ok_count(gateway) - before_ok >= 4  # the provider actor answered them
    deadline = time.monotonic() + 20
    while True:
        rows = gateway_rows(gateway.store, "team-b", want=len(before) + 4)
        new = [r for r in rows if r["request_id"] not in before and r["status"] == 200]
        if len(new) >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(new) >= 4 and {r["model"] for r in new} == {"sim/sim-1"}
