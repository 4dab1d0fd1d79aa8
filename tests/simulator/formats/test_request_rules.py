"""Rules the formats share (`formats/base.py`): the stop-sequence lists of Anthropic and Gemini
(`stop_list`: a bad list is the format's 400, empty strings are dropped, a good one stops the
answer) and the output-token limit of all three (`positive_int`: a bool, 0 or a string is a
400)."""

from __future__ import annotations

import pytest

from evalcluster.simulator import answer

from ..wire import build

PROMPT = "Say something."


def _with_stop(fmt: str, url: str, stop: object) -> tuple[str, dict, dict]:
    call = build(fmt, url, PROMPT)
    if fmt == "anthropic":
        return call.url, {**call.body, "stop_sequences": stop}, call.headers
    return call.url, {**call.body, "generationConfig": {"stopSequences": stop}}, call.headers


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("anthropic", "stop_sequences: Input should be a list of strings"),
        ("gemini", "Invalid value at 'generation_config.stop_sequences'"),
    ],
)
@pytest.mark.parametrize("stop", ["word", [1], ["ok", None]])
def test_a_stop_list_that_is_not_strings_is_400(sim, client, fmt, message, stop):
    url, body, headers = _with_stop(fmt, sim.url, stop)
    resp = client.post(url, json=body, headers=headers)
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == message


@pytest.mark.parametrize("fmt", ["anthropic", "gemini"])
def test_empty_stop_strings_are_dropped_and_a_real_one_stops(sim, client, fmt):
    full = answer(PROMPT)
    word = full.split()[1]
    url, body, headers = _with_stop(fmt, sim.url, ["", word])
    resp = client.post(url, json=body, headers=headers)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    text = (
        data["content"][0]["text"]
        if fmt == "anthropic"
        else (data["candidates"][0]["content"]["parts"][0]["text"])
    )
    assert text == full[: full.index(word)]


def _with_max_tokens(fmt: str, url: str, value: object) -> tuple[str, dict, dict]:
    call = build(fmt, url, PROMPT)
    if fmt == "gemini":
        return call.url, {**call.body, "generationConfig": {"maxOutputTokens": value}}, call.headers
    return call.url, {**call.body, "max_tokens": value}, call.headers


@pytest.mark.parametrize("fmt", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("value", [True, 0, -3, "5", 2.5])
def test_an_output_limit_that_is_not_a_positive_integer_is_400(sim, client, fmt, value):
    url, body, headers = _with_max_tokens(fmt, sim.url, value)
    assert client.post(url, json=body, headers=headers).status_code == 400


@pytest.mark.parametrize("fmt", ["openai", "anthropic", "gemini"])
def test_an_output_limit_of_one_is_honoured(sim, client, fmt):
    url, body, headers = _with_max_tokens(fmt, sim.url, 1)
    resp = client.post(url, json=body, headers=headers)
    assert resp.status_code == 200, resp.text
