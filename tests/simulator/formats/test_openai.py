import pytest

from evalcluster.simulator import answer, count_tokens
from evalcluster.simulator.formats.openai import go_duration

from ..wire import build, post

QUESTION = "What is 17 + 25? Answer with the number only."


def test_chat_completion_has_the_documented_shape_and_exact_usage(sim, client):
    system = "You are a careful calculator."
    resp = post(client, "openai", sim.url, QUESTION, system=system)
    assert resp.status_code == 200
    body = resp.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int) and body["model"] == "sim-1"
    choice = body["choices"][0]
    assert choice["index"] == 0
    assert choice["message"] == {"role": "assistant", "content": "42", "refusal": None}
    assert choice["finish_reason"] == "stop"
    expected_in = count_tokens(system) + count_tokens(QUESTION)
    assert body["usage"] == {
        "prompt_tokens": expected_in,
        "completion_tokens": 1,
        "total_tokens": expected_in + 1,
        "prompt_tokens_details": {"cached_tokens": 0},  # as OpenAI sends it: no cache read
    }


def test_content_parts_and_every_message_count_towards_input_tokens(sim, client):
    messages = [
        {"role": "developer", "content": "Be terse."},
        {"role": "user", "content": "What is 1 + 1?"},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": [{"type": "text", "text": "And 2 * 21?"}]},
    ]
    resp = client.post(
        sim.url + "/v1/chat/completions",
        json={"model": "sim-1", "messages": messages},
        headers={"Authorization": "Bearer k"},
    )
    body = resp.json()
    texts = ["Be terse.", "What is 1 + 1?", "2", "And 2 * 21?"]
    assert body["usage"]["prompt_tokens"] == sum(count_tokens(t) for t in texts)
    assert body["choices"][0]["message"]["content"] == answer("And 2 * 21?") == "42"


def test_openrouter_usage_include_adds_cost_at_the_configured_prices(sim, client):
    sim.reconfigure(price_input_per_mtok=3.0, price_output_per_mtok=15.0)
    call = build("openai", sim.url, QUESTION)
    body = {**call.body, "usage": {"include": True}}
    resp = client.post(call.url, json=body, headers=call.headers)
    usage = resp.json()["usage"]
    expected = (usage["prompt_tokens"] * 3.0 + usage["completion_tokens"] * 15.0) / 1e6
    assert usage["cost"] == pytest.approx(expected)
    plain = post(client, "openai", sim.url, QUESTION).json()["usage"]
    assert "cost" not in plain


def test_default_prices_are_one_and_two_dollars_per_million(sim, client):
    call = build("openai", sim.url, QUESTION)
    body = {**call.body, "usage": {"include": True}}
    usage = client.post(call.url, json=body, headers=call.headers).json()["usage"]
    assert usage["cost"] == pytest.approx((usage["prompt_tokens"] * 1 + 1 * 2) / 1e6)


def test_max_tokens_truncates_with_finish_reason_length(sim, client):
    prompt = "Tell me something."
    full = answer(prompt)
    resp = post(client, "openai", sim.url, prompt, max_tokens=3)
    body = resp.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert full.startswith(body["choices"][0]["message"]["content"])
    assert body["usage"]["completion_tokens"] == 3


def test_stop_sequence_cuts_the_answer(sim, client):
    prompt = "Tell me something."
    full = answer(prompt)
    word = full.split()[2]
    call = build("openai", sim.url, prompt)
    body = client.post(call.url, json={**call.body, "stop": [word]}, headers=call.headers).json()
    assert body["choices"][0]["message"]["content"] == full[: full.index(word)]
    assert body["choices"][0]["finish_reason"] == "stop"


def test_models_lists_the_configured_models(sim, client):
    resp = client.get(sim.url + "/v1/models", headers={"Authorization": "Bearer k"})
    assert resp.status_code == 200
    assert [m["id"] for m in resp.json()["data"]] == ["sim-1", "sim-1-mini"]
    assert client.get(sim.url + "/v1/models").status_code == 200  # no key list: open
    sim.reconfigure(api_keys=["k"])
    assert client.get(sim.url + "/v1/models").status_code == 401
    assert client.get(sim.url + "/v1/models", headers={"Authorization": "Bearer k"}).is_success


def test_without_a_key_list_a_request_without_a_key_is_answered(sim, client):
    resp = post(client, "openai", sim.url, QUESTION, key=None)
    assert resp.status_code == 200
    assert resp.json()["choices"][0]["message"]["content"] == answer(QUESTION)
    assert sim.stats()["by_outcome"]["ok"] == 1


def test_missing_key_is_401_in_openai_shape_when_keys_are_listed(sim, client):
    sim.reconfigure(api_keys=["sk-good"])
    resp = post(client, "openai", sim.url, QUESTION, key=None)
    assert resp.status_code == 401
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert sim.stats()["by_outcome"]["auth"] == 1


def test_unknown_key_is_401_invalid_api_key_and_never_echoed(sim, client):
    sim.reconfigure(api_keys=["sk-good"])
    bad = post(client, "openai", sim.url, QUESTION, key="sk-bad-secret-value")
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == "invalid_api_key"
    assert "sk-bad" not in bad.text and "sk-good" not in bad.text
    assert post(client, "openai", sim.url, QUESTION, key="sk-good").status_code == 200


def test_invalid_bodies_get_400_naming_the_parameter(sim, client):
    headers = {"Authorization": "Bearer k"}
    url = sim.url + "/v1/chat/completions"
    no_messages = client.post(url, json={"model": "sim-1"}, headers=headers)
    assert no_messages.status_code == 400
    assert no_messages.json()["error"]["param"] == "messages"
    not_json = client.post(url, content=b"{nope", headers=headers)
    assert not_json.status_code == 400
    assert not_json.json()["error"]["type"] == "invalid_request_error"
    assert sim.stats()["by_outcome"]["bad_request"] == 2


def test_rate_limit_headers_come_on_every_response_when_limits_are_set(sim, client):
    sim.reconfigure(rpm=600, tpm=60_000)
    resp = post(client, "openai", sim.url, QUESTION, max_tokens=10)
    h = resp.headers
    assert h["x-ratelimit-limit-requests"] == "600"
    assert h["x-ratelimit-limit-tokens"] == "60000"
    assert int(h["x-ratelimit-remaining-requests"]) == 9
    charged = count_tokens(QUESTION) + 10
    assert int(h["x-ratelimit-remaining-tokens"]) == 1000 - charged
    assert h["x-ratelimit-reset-requests"].endswith("s")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.12, "120ms"), (1, "1s"), (1.5, "1.5s"), (360, "6m0s"), (3725, "1h2m5s")],
)
def test_go_duration_writes_openai_reset_strings(seconds, text):
    assert go_duration(seconds) == text


def test_context_window_overflow_is_context_length_exceeded(sim, client):
    sim.reconfigure(context_window=5)
    resp = post(client, "openai", sim.url, QUESTION)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "context_length_exceeded"
    assert sim.stats()["by_outcome"]["context_length"] == 1
