from evalcluster.simulator import answer, count_tokens

from ..wire import build, post

QUESTION = "What is 12 * 12? Answer with the number only."


def test_generate_content_has_the_documented_shape_and_exact_usage(sim, client):
    system = "You are a calculator."
    resp = post(client, "gemini", sim.url, QUESTION, system=system, model="gemini-2.5-flash")
    assert resp.status_code == 200
    body = resp.json()
    candidate = body["candidates"][0]
    assert candidate["content"] == {"role": "model", "parts": [{"text": "144"}]}
    assert candidate["finishReason"] == "STOP" and candidate["index"] == 0
    prompt_tokens = count_tokens(system) + count_tokens(QUESTION)
    assert body["usageMetadata"] == {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": 1,
        "totalTokenCount": prompt_tokens + 1,
    }
    assert body["modelVersion"] == "gemini-2.5-flash"


def test_key_may_come_in_the_query_string(sim, client):
    call = build("gemini", sim.url, QUESTION, key=None)
    resp = client.post(call.url + "?key=abc", json=call.body)
    assert resp.status_code == 200


def test_thinking_tokens_header_is_reported_and_counted_in_the_total(sim, client):
    resp = post(client, "gemini", sim.url, QUESTION, headers={"x-sim-thinking-tokens": "30"})
    meta = resp.json()["usageMetadata"]
    assert meta["thoughtsTokenCount"] == 30
    assert meta["totalTokenCount"] == meta["promptTokenCount"] + meta["candidatesTokenCount"] + 30
    thinking = {"x-sim-thinking-tokens": "30"}
    openai = post(client, "openai", sim.url, QUESTION, headers=thinking).json()["usage"]
    assert openai["total_tokens"] == count_tokens(QUESTION) + 1
    anthropic = post(client, "anthropic", sim.url, QUESTION, headers=thinking).json()["usage"]
    assert anthropic["output_tokens"] == 1


def test_max_output_tokens_truncates_with_max_tokens(sim, client):
    prompt = "Describe the sea."
    body = post(client, "gemini", sim.url, prompt, max_tokens=2).json()
    assert body["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert body["usageMetadata"]["candidatesTokenCount"] == 2
    assert answer(prompt).startswith(body["candidates"][0]["content"]["parts"][0]["text"])


def test_multi_turn_contents_count_every_part(sim, client):
    contents = [
        {"role": "user", "parts": [{"text": "What is 1 + 1?"}]},
        {"role": "model", "parts": [{"text": "2"}]},
        {"role": "user", "parts": [{"text": "And"}, {"text": "what is 3 - 5?"}]},
    ]
    call = build("gemini", sim.url, "x")
    body = client.post(call.url, json={"contents": contents}, headers=call.headers).json()
    texts = ["What is 1 + 1?", "2", "And", "what is 3 - 5?"]
    assert body["usageMetadata"]["promptTokenCount"] == sum(count_tokens(t) for t in texts)
    assert body["candidates"][0]["content"]["parts"][0]["text"] == "-2"


def test_missing_key_is_403_permission_denied_when_keys_are_listed(sim, client):
    assert post(client, "gemini", sim.url, QUESTION, key=None).status_code == 200
    sim.reconfigure(api_keys=["good-key"])
    resp = post(client, "gemini", sim.url, QUESTION, key=None)
    assert resp.status_code == 403
    error = resp.json()["error"]
    assert error["code"] == 403 and error["status"] == "PERMISSION_DENIED"


def test_invalid_key_is_400_with_api_key_invalid(sim, client):
    sim.reconfigure(api_keys=["good-key"])
    resp = post(client, "gemini", sim.url, QUESTION, key="bad-key-123")
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["details"][0]["reason"] == "API_KEY_INVALID"
    assert "bad-key-123" not in resp.text
    assert sim.stats()["by_outcome"]["auth"] == 1


def test_rate_limited_request_gets_resource_exhausted_with_retry_info(sim, client):
    sim.reconfigure(tpm=60)  # 1 token a second; the first request leaves debt
    assert post(client, "gemini", sim.url, QUESTION, max_tokens=5).status_code == 200
    resp = post(client, "gemini", sim.url, QUESTION, max_tokens=5)
    assert resp.status_code == 429
    error = resp.json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    types = {d["@type"].rsplit(".", 1)[-1]: d for d in error["details"]}
    quota_id = types["QuotaFailure"]["violations"][0]["quotaId"]
    assert "PerMinute" in quota_id and "PerDay" not in quota_id
    delay = float(types["RetryInfo"]["retryDelay"].rstrip("s"))
    assert 1 < delay <= 20
    assert int(resp.headers["retry-after"]) >= delay


def test_unknown_action_is_404(sim, client):
    resp = client.post(sim.url + "/v1beta/models/x:streamGenerateContent", json={})
    assert resp.status_code == 404
