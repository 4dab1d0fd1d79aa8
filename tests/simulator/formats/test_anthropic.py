from datetime import UTC, datetime

from evalcluster.simulator import answer, count_tokens

from ..wire import build, post

QUESTION = "What is (3 + 4) * 2?\nA) 13\nB) 14\nC) 15\nAnswer with the letter."


def test_message_has_the_documented_shape_and_exact_usage(sim, client):
    system = "Answer with one letter."
    resp = post(client, "anthropic", sim.url, QUESTION, system=system)
    assert resp.status_code == 200
    body = resp.json()
    assert body["id"].startswith("msg_")
    assert body["type"] == "message" and body["role"] == "assistant"
    assert body["model"] == "sim-1"
    assert body["content"] == [{"type": "text", "text": "B"}]
    assert body["stop_reason"] == "end_turn" and body["stop_sequence"] is None
    assert body["usage"] == {
        "input_tokens": count_tokens(system) + count_tokens(QUESTION),
        "output_tokens": 1,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def test_system_as_blocks_and_block_content_are_counted(sim, client):
    body = {
        "model": "sim-1",
        "max_tokens": 50,
        "system": [{"type": "text", "text": "Be exact."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "What is 6 * 7?"}]}],
    }
    call = build("anthropic", sim.url, "x")
    resp = client.post(call.url, json=body, headers=call.headers).json()
    expected = count_tokens("Be exact.") + count_tokens("What is 6 * 7?")
    assert resp["usage"]["input_tokens"] == expected
    assert resp["content"][0]["text"] == "42"


def test_max_tokens_is_required(sim, client):
    call = build("anthropic", sim.url, QUESTION)
    del call.body["max_tokens"]
    resp = client.post(call.url, json=call.body, headers=call.headers)
    assert resp.status_code == 400
    body = resp.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in body["error"]["message"]


def test_max_tokens_truncates_with_stop_reason_max_tokens(sim, client):
    prompt = "Say something."
    body = post(client, "anthropic", sim.url, prompt, max_tokens=2).json()
    assert body["stop_reason"] == "max_tokens"
    assert body["usage"]["output_tokens"] == 2
    assert answer(prompt).startswith(body["content"][0]["text"])


def test_stop_sequence_is_reported(sim, client):
    prompt = "Say something."
    full = answer(prompt)
    word = full.split()[1]
    call = build("anthropic", sim.url, prompt)
    body = {**call.body, "stop_sequences": ["zzz", word]}
    resp = client.post(call.url, json=body, headers=call.headers).json()
    assert resp["stop_reason"] == "stop_sequence" and resp["stop_sequence"] == word
    assert resp["content"][0]["text"] == full[: full.index(word)]


def test_missing_key_is_401_authentication_error_when_keys_are_listed(sim, client):
    assert post(client, "anthropic", sim.url, QUESTION, key=None).status_code == 200
    sim.reconfigure(api_keys=["sk-ant-good"])
    resp = post(client, "anthropic", sim.url, QUESTION, key=None)
    assert resp.status_code == 401
    assert resp.json()["error"]["type"] == "authentication_error"


def test_missing_version_header_is_400(sim, client):
    call = build("anthropic", sim.url, QUESTION)
    headers = {k: v for k, v in call.headers.items() if k != "anthropic-version"}
    resp = client.post(call.url, json=call.body, headers=headers)
    assert resp.status_code == 400
    assert "anthropic-version" in resp.json()["error"]["message"]


def test_rate_limit_headers_are_anthropics_with_rfc3339_resets(sim, client):
    sim.reconfigure(rpm=120, tpm=6000)
    resp = post(client, "anthropic", sim.url, QUESTION, max_tokens=5)
    h = resp.headers
    assert h["anthropic-ratelimit-requests-limit"] == "120"
    assert h["anthropic-ratelimit-requests-remaining"] == "1"
    assert h["anthropic-ratelimit-tokens-limit"] == "6000"
    reset = datetime.fromisoformat(h["anthropic-ratelimit-tokens-reset"])
    assert reset.tzinfo is not None
    assert 0 <= (reset - datetime.now(UTC)).total_seconds() <= 1.5
    assert "x-ratelimit-limit-requests" not in h


def test_rate_limited_request_gets_rate_limit_error_and_retry_after(sim, client):
    sim.reconfigure(rpm=60)
    assert post(client, "anthropic", sim.url, QUESTION).status_code == 200
    resp = post(client, "anthropic", sim.url, QUESTION)
    assert resp.status_code == 429
    assert resp.json()["error"]["type"] == "rate_limit_error"
    assert resp.headers["retry-after"] == "1"
    assert 0 < int(resp.headers["retry-after-ms"]) <= 1000
    assert resp.headers["anthropic-ratelimit-requests-remaining"] == "0"
