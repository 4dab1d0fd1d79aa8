"""The reference path: a request that carries its sample's reference (``x-evalcluster-reference``)
is answered right with probability `accuracy` whatever the dataset, and wrong answers miss."""

from __future__ import annotations

import math
from urllib.parse import quote

import pytest

from evalcluster.scoring.text import Normalizer
from evalcluster.simulator.model import answer, reply, wrong_answer
from evalcluster.simulator.reference import (
    MAX_ENCODED_LENGTH,
    REFERENCE_HEADER,
    decode_reference,
    encode_reference,
)

from .wire import FORMAT_NAMES, post, text_of

CAPITALS = [
    ("France", "Paris"),
    ("Colombia", "Bogotá"),
    ("Brazil", "Brasília"),
    ("United States", "Washington, D.C."),
    ("Japan", "Tokyo"),
    ("Ivory Coast", "Yamoussoukro"),
]
LENIENT = Normalizer(strip_punctuation=True)


def _prompt(i: int) -> str:
    return f"What is the capital of country number {i}? Answer with the city only."


def test_with_accuracy_one_the_reference_is_the_answer_for_any_prompt():
    for country, capital in CAPITALS:
        prompt = f"What is the capital of {country}? Answer with the city only."
        got = reply(prompt, reference=capital)
        assert (got.text, got.kind, got.correct) == (capital, "reference", True)
    # Even where the prompt rules would answer otherwise (arithmetic, judge prompts).
    assert answer("What is 2 + 2?", reference="four") == "four"
    assert answer("<reference>1</reference><answer>2</answer>", reference="GRADE: C") == "GRADE: C"


def test_with_accuracy_zero_every_answer_misses_the_reference():
    for i, (_, capital) in enumerate(CAPITALS * 20):
        got = reply(_prompt(i), accuracy=0.0, reference=capital)
        assert got.correct is False and got.kind == "reference"
        assert LENIENT(got.text) != LENIENT(capital)
        assert LENIENT(capital) not in LENIENT(got.text)


@pytest.mark.parametrize("accuracy", [0.25, 0.5, 0.8])
def test_the_share_of_right_answers_is_accuracy_within_four_standard_errors(accuracy):
    n = 2000
    right = sum(
        answer(_prompt(i), accuracy=accuracy, reference="Paris") == "Paris" for i in range(n)
    )
    se = math.sqrt(accuracy * (1 - accuracy) / n)
    assert abs(right / n - accuracy) < 4 * se


def test_answers_are_deterministic_per_seed_model_and_prompt():
    def answers(**kw):
        return [answer(_prompt(i), accuracy=0.5, reference="Paris", **kw) for i in range(200)]

    assert answers(seed=1) == answers(seed=1)
    assert answers(seed=1) != answers(seed=2)
    assert answers(model="sim-1") != answers(model="sim-1-mini")


def test_right_or_wrong_is_the_same_draw_as_without_a_reference():
    # An arithmetic dataset scores the same whether the run sends its reference or not.
    for a in range(60):
        prompt = f"What is {a} + 17? Answer with the number only."
        without = answer(prompt, accuracy=0.5, seed=3)
        assert answer(prompt, accuracy=0.5, seed=3, reference=str(a + 17)) == without


@pytest.mark.parametrize(
    ("reference", "prompt", "allowed"),
    [
        ("42", "", {"41", "43"}),
        ("1,000", "", {"999", "1001"}),
        ("B", "Pick one.\nA) x\nB) y\nC) z", {"A", "C"}),
        ("b", "", {"a", "c", "d"}),
        ("yes", "", {"no"}),
        ("True", "", {"False"}),
    ],
)
def test_wrong_answers_keep_the_shape_of_the_reference(reference, prompt, allowed):
    assert {wrong_answer(reference, prompt, pick) for pick in range(12)} <= allowed


@pytest.mark.parametrize("reference", ["Atlantis", "Eldorado and Avalon", "", "   ", "0.5", "x"])
def test_a_wrong_answer_never_matches_even_a_decoy_reference(reference):
    for pick in range(16):
        wrong = wrong_answer(reference, "", pick)
        assert LENIENT(wrong) != LENIENT(reference)
        if LENIENT(reference):
            assert LENIENT(reference) not in LENIENT(wrong)


def test_without_a_reference_other_prompts_still_get_a_sentence():
    got = reply("What is the capital of France?", accuracy=1.0)
    assert got.kind == "chat" and got.correct is None and "Paris" not in got.text


def test_header_encoding_round_trips_any_text_and_drops_long_references():
    for text in ("Washington, D.C.", "Bogotá", "line one\nline two", " padded ", "100%"):
        encoded = encode_reference(text)
        assert encoded is not None and encoded.isascii() and "\n" not in encoded
        assert decode_reference(encoded) == text
    assert encode_reference("x" * (MAX_ENCODED_LENGTH + 1)) is None
    with pytest.raises(ValueError):
        decode_reference("%ff%fe")


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_the_server_answers_the_reference_header_in_every_format(sim, client, fmt):
    for _, capital in CAPITALS:
        headers = {REFERENCE_HEADER: quote(capital, safe="")}
        resp = post(client, fmt, sim.url, "Capital?", headers=headers, max_tokens=64)
        assert resp.status_code == 200, resp.text
        assert text_of(fmt, resp.json()) == capital
    sim.reconfigure(accuracy=0.0)
    headers = {REFERENCE_HEADER: quote("Paris", safe="")}
    resp = post(client, fmt, sim.url, "Capital?", headers=headers)
    assert text_of(fmt, resp.json()) != "Paris"


def test_a_reference_header_that_is_not_utf8_is_a_400(sim, client):
    resp = post(client, "openai", sim.url, "Capital?", headers={REFERENCE_HEADER: "%ff"})
    assert resp.status_code == 400
    assert REFERENCE_HEADER in resp.json()["error"]["message"]
