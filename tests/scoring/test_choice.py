import pytest

from evalcluster.errors import SpecError
from evalcluster.scoring.choice import ChoiceExtractor

from .conftest import build_one


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("B", "B"),
        ("b", "B"),
        ("(B)", "B"),
        ("B)", "B"),
        ("B.", "B"),
        ("[d]", "D"),
        ("**C**", "C"),
        ("Answer: B", "B"),
        ("answer: b", "B"),
        ("The answer is B.", "B"),
        ("The correct answer is (C).", "C"),
        ("Final answer: **D**", "D"),
        ("After weighing it all, the best option is C", "C"),
        ("The answer is B, not A.", "B"),
        ("I first thought answer: A. On reflection the answer is D.", "D"),
        ("B) Paris", "B"),
        ("(A) Paris, because it is the capital", "A"),
        ("C. Berlin is the capital of Germany", "C"),
        ("D - Madrid", "D"),
        ("(A) is wrong and (B) too, so I pick (C) here.", "C"),
    ],
)
def test_extract_choice_reads_common_formats(output: str, expected: str) -> None:
    assert ChoiceExtractor("ABCD")(output) == expected


@pytest.mark.parametrize(
    "output",
    [
        "",
        "I am not sure.",
        "The answer is a bit unclear",  # lower-case 'a' is an article here
        "The answer is E",  # not among the choices
        "E",
        "A good guess would be hard",
    ],
)
def test_extract_choice_finds_nothing(output: str) -> None:
    assert ChoiceExtractor("ABCD")(output) is None


def test_choice_scores_against_reference_letter() -> None:
    scorer = build_one("choice")
    assert scorer.score("The answer is (B).", "B", {}).value == 1.0
    assert scorer.score("The answer is (B).", "(b)", {}).value == 1.0
    assert scorer.score("Answer: C", "B", {}).value == 0.0
    missing = scorer.score("Hmm, hard to say.", "B", {})
    assert missing.value == 0.0 and "no choice" in (missing.explanation or "")


def test_choice_option_extends_letters() -> None:
    scorer = build_one("choice", choices="ABCDE")
    assert scorer.score("Answer: E", "E", {}).value == 1.0
    assert build_one("choice").score("Answer: E", "E", {}).value is None


def test_choice_reference_outside_choices_is_unscorable() -> None:
    score = build_one("choice").score("A", "Paris", {})
    assert score.value is None
    assert "not one of ABCD" in (score.explanation or "")


@pytest.mark.parametrize("choices", ["A", "AAB", "A1", ""])
def test_choice_rejects_bad_choices(choices: str) -> None:
    with pytest.raises(SpecError) as info:
        build_one("choice", choices=choices)
    assert info.value.field == "scorers[0].choices"
