import json

import httpx
import pytest

from evalcluster.simulator import FORCE_KINDS, count_tokens

from .wire import FORMAT_NAMES, build, finish_of, post, text_of, usage_of

PROMPT = "Tell me a story about the sea."


def _error(body):
    return body["error"]


def _gemini_quota_id(body):
    details = {d["@type"].rsplit(".", 1)[-1]: d for d in body["error"]["details"]}
    return details["QuotaFailure"]["violations"][0]["quotaId"]


# (kind, format) -> (expected HTTP status, check of the JSON body or None for non-JSON)
EXPECTED = {
    ("429", "openai"): (429, lambda b: _error(b)["code"] == "rate_limit_exceeded"),
    ("429", "anthropic"): (429, lambda b: _error(b)["type"] == "rate_limit_error"),
    ("429", "gemini"): (429, lambda b: "PerMinute" in _gemini_quota_id(b)),
    ("quota", "openai"): (429, lambda b: _error(b)["code"] == "insufficient_quota"),
    ("quota", "anthropic"): (
        429,
        lambda b: (
            _error(b)["type"] == "rate_limit_error" and "usage limits" in _error(b)["message"]
        ),
    ),
    ("quota", "gemini"): (429, lambda b: "PerDay" in _gemini_quota_id(b)),
    ("credits", "openai"): (
        402,
        lambda b: (
            _error(b)["code"] == 402 and _error(b)["message"].startswith("Insufficient credits")
        ),
    ),
    ("credits", "anthropic"): (400, lambda b: "credit balance" in _error(b)["message"]),
    ("credits", "gemini"): (429, lambda b: "PerDay" in _gemini_quota_id(b)),
    ("500", "openai"): (500, lambda b: _error(b)["type"] == "server_error"),
    ("500", "anthropic"): (500, lambda b: _error(b)["type"] == "api_error"),
    ("500", "gemini"): (500, lambda b: _error(b)["status"] == "INTERNAL"),
    ("503", "openai"): (503, lambda b: "overloaded" not in _error(b)["message"]),
    ("503", "anthropic"): (503, lambda b: _error(b)["type"] == "api_error"),
    ("503", "gemini"): (503, lambda b: _error(b)["status"] == "UNAVAILABLE"),
    ("overloaded", "openai"): (503, lambda b: "overloaded" in _error(b)["message"]),
    ("overloaded", "anthropic"): (529, lambda b: _error(b)["type"] == "overloaded_error"),
    ("overloaded", "gemini"): (503, lambda b: _error(b)["status"] == "UNAVAILABLE"),
    ("auth", "openai"): (401, lambda b: _error(b)["code"] == "invalid_api_key"),
    ("auth", "anthropic"): (401, lambda b: _error(b)["type"] == "authentication_error"),
    ("auth", "gemini"): (400, lambda b: _error(b)["details"][0]["reason"] == "API_KEY_INVALID"),
    ("forbidden", "openai"): (403, lambda b: _error(b)["type"] == "invalid_request_error"),
    ("forbidden", "anthropic"): (403, lambda b: _error(b)["type"] == "permission_error"),
    ("forbidden", "gemini"): (403, lambda b: _error(b)["status"] == "PERMISSION_DENIED"),
    ("bad_request", "openai"): (400, lambda b: _error(b)["type"] == "invalid_request_error"),
    ("bad_request", "anthropic"): (400, lambda b: _error(b)["type"] == "invalid_request_error"),
    ("bad_request", "gemini"): (400, lambda b: _error(b)["status"] == "INVALID_ARGUMENT"),
    ("context_length", "openai"): (400, lambda b: _error(b)["code"] == "context_length_exceeded"),
    ("context_length", "anthropic"): (
        400,
        lambda b: _error(b)["message"].startswith("prompt is too long"),
    ),
    ("context_length", "gemini"): (
        400,
        lambda b: (
            "input token count" in _error(b)["message"]
            and "exceeds the maximum" in _error(b)["message"]
        ),
    ),
    ("content_filter", "openai"): (400, lambda b: _error(b)["code"] == "content_policy_violation"),
    ("content_filter", "anthropic"): (200, lambda b: b["stop_reason"] == "refusal"),
    ("content_filter", "gemini"): (
        200,
        lambda b: (
            b["candidates"][0]["finishReason"] == "SAFETY" and "content" not in b["candidates"][0]
        ),
    ),
    ("length", "openai"): (200, lambda b: finish_of("openai", b) == "length"),
    ("length", "anthropic"): (200, lambda b: finish_of("anthropic", b) == "max_tokens"),
    ("length", "gemini"): (200, lambda b: finish_of("gemini", b) == "MAX_TOKENS"),
    ("blocked", "openai"): (
        200,
        lambda b: (
            finish_of("openai", b) == "content_filter"
            and b["choices"][0]["message"]["content"] is None
        ),
    ),
    ("blocked", "anthropic"): (200, lambda b: b["stop_reason"] == "refusal" and b["content"] == []),
    ("blocked", "gemini"): (
        200,
        lambda b: b["promptFeedback"]["blockReason"] == "SAFETY" and "candidates" not in b,
    ),
}
for _fmt in FORMAT_NAMES:
    EXPECTED[("error_in_200", _fmt)] = (200, lambda b: _error(b)["code"] == 502)
    EXPECTED[("invalid_json", _fmt)] = (200, None)
    EXPECTED[("html_502", _fmt)] = (502, None)
    EXPECTED[("empty", _fmt)] = (200, None)

ANSWERED = sorted({kind for kind, _ in EXPECTED})


def test_every_force_kind_is_covered_here():
    assert set(FORCE_KINDS) == set(ANSWERED) | {"timeout", "drop"}


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
@pytest.mark.parametrize("kind", ANSWERED)
def test_forced_outcome_looks_as_the_provider_sends_it(sim, client, kind, fmt):
    resp = post(client, fmt, sim.url, PROMPT, headers={"x-sim-force": kind})
    status, check = EXPECTED[(kind, fmt)]
    assert resp.status_code == status
    if kind == "invalid_json":
        with pytest.raises(json.JSONDecodeError):
            json.loads(resp.content)
    elif kind == "html_502":
        assert resp.headers["content-type"].startswith("text/html")
        assert b"<html>" in resp.content
    elif kind == "empty":
        assert resp.content == b""
    else:
        assert check(resp.json())
    assert sim.stats()["by_format_outcome"][fmt] == {f"forced_{kind}": 1}


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_forced_length_keeps_half_the_answer_and_reports_its_tokens(sim, client, fmt):
    full = post(client, fmt, sim.url, PROMPT).json()
    cut = post(client, fmt, sim.url, PROMPT, headers={"x-sim-force": "length"}).json()
    full_text, cut_text = text_of(fmt, full), text_of(fmt, cut)
    assert full_text.startswith(cut_text)
    assert usage_of(fmt, cut)[1] == count_tokens(cut_text) == count_tokens(full_text) // 2


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_forced_timeout_holds_the_request_past_a_short_client_timeout(sim, client, fmt):
    call = build(fmt, sim.url, PROMPT, headers={"x-sim-force": "timeout"})
    with pytest.raises(httpx.ReadTimeout):
        client.post(call.url, json=call.body, headers=call.headers, timeout=0.3)
    assert sim.stats()["by_outcome"]["forced_timeout"] == 1


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_forced_drop_closes_the_connection_without_a_response(sim, client, fmt):
    call = build(fmt, sim.url, PROMPT, headers={"x-sim-force": "drop"})
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(call.url, json=call.body, headers=call.headers)
    assert sim.stats()["by_outcome"]["forced_drop"] == 1


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_retry_after_header_overrides_the_forced_delay(sim, client, fmt):
    headers = {"x-sim-force": "429", "x-sim-retry-after": "17"}
    resp = post(client, fmt, sim.url, PROMPT, headers=headers)
    assert resp.headers["retry-after"] == "17"
    assert resp.headers["retry-after-ms"] == "17000"
    if fmt == "gemini":
        details = {d["@type"].rsplit(".", 1)[-1]: d for d in resp.json()["error"]["details"]}
        assert details["RetryInfo"]["retryDelay"] == "17s"


def test_fractional_retry_after_rounds_seconds_up_and_keeps_milliseconds(sim, client):
    headers = {"x-sim-force": "429", "x-sim-retry-after": "0.25"}
    resp = post(client, "gemini", sim.url, PROMPT, headers=headers)
    assert resp.headers["retry-after"] == "1"
    assert resp.headers["retry-after-ms"] == "250"
    assert '"retryDelay":"0.25s"' in resp.text


def test_forced_429_defaults_to_a_one_second_delay(sim, client):
    resp = post(client, "openai", sim.url, PROMPT, headers={"x-sim-force": "429"})
    assert (resp.headers["retry-after"], resp.headers["retry-after-ms"]) == ("1", "1000")


@pytest.mark.parametrize("value", ["true", "false"])
def test_should_retry_header_is_echoed(sim, client, value):
    headers = {"x-sim-force": "500", "x-sim-should-retry": value}
    resp = post(client, "anthropic", sim.url, PROMPT, headers=headers)
    assert resp.headers["x-should-retry"] == value
    assert "x-should-retry" not in post(client, "anthropic", sim.url, PROMPT).headers


def test_config_force_applies_to_every_request_and_the_header_wins(sim, client):
    sim.reconfigure(force="overloaded")
    assert post(client, "anthropic", sim.url, PROMPT).status_code == 529
    assert post(client, "gemini", sim.url, PROMPT).status_code == 503
    forced = post(client, "anthropic", sim.url, PROMPT, headers={"x-sim-force": "500"})
    assert forced.status_code == 500
    sim.reconfigure(force=None)
    assert post(client, "anthropic", sim.url, PROMPT).status_code == 200


def test_unknown_force_value_is_a_bad_request(sim, client):
    resp = post(client, "openai", sim.url, PROMPT, headers={"x-sim-force": "explode"})
    assert resp.status_code == 400
    assert "x-sim-force" in resp.json()["error"]["message"]


@pytest.mark.parametrize(
    ("header", "value"),
    [("x-sim-retry-after", "soon"), ("x-sim-retry-after", "inf"), ("x-sim-thinking-tokens", "-3")],
)
def test_unreadable_sim_headers_are_bad_requests_naming_the_header(sim, client, header, value):
    resp = post(client, "gemini", sim.url, PROMPT, headers={"x-sim-force": "429", header: value})
    assert resp.status_code == 400
    assert header in resp.json()["error"]["message"]
