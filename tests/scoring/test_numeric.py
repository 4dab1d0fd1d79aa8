import pytest

from evalcluster.scoring.numeric import extract_numbers, final_number

from .conftest import build_one


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-3", -3.0),
        ("+7", 7.0),
        ("\u22123", -3.0),  # Unicode minus sign
        ("1,234", 1234.0),
        ("1,234,567.5", 1234567.5),
        ("3.5", 3.5),
        (".5", 0.5),
        ("-.25", -0.25),
        ("The answer is 42.", 42.0),
        ("1/2", 0.5),
        ("-3/4", -0.75),
        ("$1,234.50", 1234.5),
        ("50%", 50.0),
        ("1e-6", 1e-6),
        ("2.5E3", 2500.0),
        ("3-5", 5.0),  # a range, not minus five
        ("1,2,3", 3.0),  # a list, not thousands
        ("1/2/2024", 2024.0),  # a date, not a fraction
        ("Step 1: 6*7=42\nStep 2: so it is 42 apples", 42.0),
        ("#### 18", 18.0),
        ("x = -12.5;", -12.5),
    ],
)
def test_final_number_reads_common_answer_formats(text: str, expected: float) -> None:
    assert final_number(text) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("text", ["", "no digits here", "x2", "1/0", "e5", "-"])
def test_final_number_is_none_without_a_number(text: str) -> None:
    assert final_number(text) is None


def test_extract_numbers_keeps_order() -> None:
    assert extract_numbers("from 3 to -4, then 1,000 and 2/5") == [3.0, -4.0, 1000.0, 0.4]


@pytest.mark.parametrize(
    ("output", "reference", "expected"),
    [
        ("The answer is 42.", "42", 1.0),
        ("42", "42.0", 1.0),
        ("It costs $1,234.", "1234", 1.0),
        ("-3", "-3", 1.0),
        ("3", "-3", 0.0),
        ("1/2", "0.5", 1.0),
        ("0.5", "1/2", 1.0),
        ("41", "42", 0.0),
        ("I don't know", "42", 0.0),
        ("42.0000001", "42", 1.0),  # within the default absolute tolerance of 1e-6
        ("42.00001", "42", 0.0),
        ("First 40, then 2 more: 42", "42", 1.0),
        ("42, or maybe 41", "42", 0.0),  # the final number counts
    ],
)
def test_numeric_default_tolerance(output: str, reference: str, expected: float) -> None:
    assert build_one("numeric").score(output, reference, {}).value == expected


def test_numeric_absolute_and_relative_tolerance() -> None:
    absolute = build_one("numeric", tolerance=0.5)
    assert absolute.score("42.4", "42", {}).value == 1.0
    assert absolute.score("42.6", "42", {}).value == 0.0
    relative = build_one("numeric", tolerance=0, relative=0.01)
    assert relative.score("1005", "1000", {}).value == 1.0
    assert relative.score("1020", "1000", {}).value == 0.0
    assert relative.score("0", "0", {}).value == 1.0


def test_numeric_explains_a_wrong_number() -> None:
    score = build_one("numeric").score("The answer is 41.", "42", {})
    assert score.value == 0.0
    assert "41" in (score.explanation or "") and "42" in (score.explanation or "")


def test_numeric_reference_without_number_is_unscorable() -> None:
    scorer = build_one("numeric")
    assert scorer.score("42", "forty-two", {}).value is None
    assert scorer.score("42", None, {}).value is None


def test_numbers_beyond_a_float_read_as_infinity_at_once() -> None:
    # Exact arithmetic on such an exponent would not finish; the scorer must.
    assert final_number("about 1e999999999 of them") == float("inf")
    assert final_number("-2.5e400") == float("-inf")


def test_float_parsing_matches_exact_fractions() -> None:
    from fractions import Fraction

    for text in ["0.1", "1,234,567.891", "2.5E-3", ".5", "123456789012345678901234567890", "-0"]:
        exact = float(Fraction(text.replace(",", "")))
        assert final_number(text) == exact
