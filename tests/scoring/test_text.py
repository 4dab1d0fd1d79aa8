import pytest

from evalcluster.scoring.text import Normalizer

from .conftest import build_one


@pytest.mark.parametrize(
    ("output", "reference", "expected"),
    [
        ("Paris", "Paris", 1.0),
        ("  paris \n", "Paris", 1.0),
        ("PARIS", "paris", 1.0),
        ("New   York\tCity", "new york city", 1.0),
        ("Paris.", "Paris", 0.0),  # punctuation counts unless strip_punctuation
        ("Paris is the capital", "Paris", 0.0),
        ("", "Paris", 0.0),
        ("Ｐａｒｉｓ", "Paris", 1.0),  # full-width letters are NFKC-equal
        ("Straße", "STRASSE", 1.0),  # casefold, not lower()
        ("42", "42", 1.0),
        ("42", "42.0", 0.0),
    ],
)
def test_exact_default_normalisation(output: str, reference: str, expected: float) -> None:
    assert build_one("exact").score(output, reference, {}).value == expected


def test_exact_options_turn_normalisation_off_and_on() -> None:
    strict = build_one("exact", ignore_case=False, strip=False, normalize_whitespace=False)
    assert strict.score("Paris", "Paris", {}).value == 1.0
    assert strict.score("paris", "Paris", {}).value == 0.0
    assert strict.score(" Paris", "Paris", {}).value == 0.0
    assert strict.score("New  York", "New York", {}).value == 0.0
    loose = build_one("exact", strip_punctuation=True)
    assert loose.score("Paris.", "paris", {}).value == 1.0
    assert loose.score("“Paris!”", "Paris", {}).value == 1.0
    assert loose.score("St. Louis", "st louis", {}).value == 1.0


def test_exact_without_reference_is_unscorable_not_wrong() -> None:
    score = build_one("exact").score("Paris", None, {})
    assert score.value is None
    assert "no reference" in (score.explanation or "")


def test_exact_uses_its_name_as_column_suffix() -> None:
    assert build_one("exact", name="em").name == "em"
    assert build_one("exact").name == "exact"
    assert build_one("exact").needs_judge is False


def test_normalizer_collapses_unicode_whitespace() -> None:
    assert Normalizer()("a\u00a0\u2003b\n\nc") == "a b c"


@pytest.mark.parametrize(
    ("output", "reference", "expected"),
    [
        ("The capital of France is Paris.", "Paris", 1.0),
        ("the capital is PARIS", "Paris", 1.0),
        ("The capital is Lyon", "Paris", 0.0),
        ("Answer:\n  New\nYork", "new york", 1.0),
        ("", "Paris", 0.0),
    ],
)
def test_includes_finds_reference_in_output(output: str, reference: str, expected: float) -> None:
    assert build_one("includes").score(output, reference, {}).value == expected


def test_includes_case_sensitive_option() -> None:
    scorer = build_one("includes", ignore_case=False)
    assert scorer.score("paris", "Paris", {}).value == 0.0
    assert scorer.score("in Paris", "Paris", {}).value == 1.0


def test_includes_empty_or_missing_reference_is_unscorable() -> None:
    scorer = build_one("includes")
    assert scorer.score("anything", "  ", {}).value is None
    assert scorer.score("anything", None, {}).value is None


def test_regex_without_group_scores_a_match() -> None:
    scorer = build_one("regex", pattern=r"\bdef \w+\(")
    assert scorer.score("```python\ndef add(a, b):\n```", "ignored", {}).value == 1.0
    assert scorer.score("lambda a, b: a + b", None, {}).value == 0.0


def test_regex_group_is_compared_with_reference() -> None:
    scorer = build_one("regex", pattern=r"ANSWER:\s*(\w+)", group=1)
    assert scorer.score("Let me think. ANSWER: Paris", "Paris", {}).value == 1.0
    wrong = scorer.score("ANSWER: Lyon", "Paris", {})
    assert wrong.value == 0.0
    assert "Lyon" in (wrong.explanation or "")
    assert scorer.score("no answer line", "Paris", {}).value == 0.0
    # No reference: a match alone is enough.
    assert scorer.score("ANSWER: Lyon", None, {}).value == 1.0


def test_regex_named_group_ignore_case_and_last_occurrence() -> None:
    scorer = build_one(
        "regex",
        pattern=r"answer is (?P<ans>\w+)",
        group="ans",
        ignore_case=True,
        occurrence="last",
    )
    text = "First I thought the answer is Lyon, but no: The Answer is PARIS"
    assert scorer.score(text, "paris", {}).value == 1.0
    first = build_one("regex", pattern=r"answer is (\w+)", group=1, ignore_case=True)
    assert first.score(text, "paris", {}).value == 0.0


def test_regex_optional_group_that_did_not_match_scores_zero() -> None:
    scorer = build_one("regex", pattern=r"x(\d+)?", group=1)
    score = scorer.score("x", "5", {})
    assert score.value == 0.0
    assert "did not take part" in (score.explanation or "")
