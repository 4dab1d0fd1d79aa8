from fractions import Fraction

import pytest

from evalcluster.simulator.arithmetic import evaluate, find_expression, format_number


@pytest.mark.parametrize(
    ("prompt", "value"),
    [
        ("What is 17 + 25? Answer with the number only.", 42),
        ("What is 164 - 414? Answer with the number only.", -250),
        ("Compute 2 + 3 * 4.", 14),
        ("Compute (2 + 3) * 4.", 20),
        ("What is -5 + 3?", -2),
        ("What is 7 / 2?", Fraction(7, 2)),
        ("What is 6 × 7?", 42),
        ("What is 10 − 4 ÷ 2?", 8),
        ("What is ((1+2)*(3+4))?", 21),
    ],
)
def test_find_expression_evaluates_the_question_exactly(prompt, value):
    found = find_expression(prompt)
    assert found is not None
    assert found.value == value


def test_find_expression_ignores_text_without_a_binary_operator():
    assert find_expression("Answer with the number only.") is None
    assert find_expression("A) 6\nB) -7\n(C) 8") is None
    assert find_expression("The year 2024 was long.") is None


def test_find_expression_takes_the_last_question_in_the_prompt():
    found = find_expression("Example: 1 + 1 = 2.\nNow: what is 3 * 5?")
    assert found is not None and found.value == 15 and found.text == "3 * 5"


def test_division_by_zero_is_not_a_question():
    assert find_expression("What is 5 / 0?") is None


def test_evaluate_rejects_anything_but_one_whole_expression():
    assert evaluate("2*(3+4)") == 14
    with pytest.raises(ValueError):
        evaluate("2 + ")
    with pytest.raises(ValueError):
        evaluate("import os")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Fraction(42), "42"),
        (Fraction(-250), "-250"),
        (Fraction(7, 2), "3.5"),
        (Fraction(1, 3), "0.333333"),
        (Fraction(-1, 8), "-0.125"),
    ],
)
def test_format_number_writes_integers_plainly_and_fractions_as_short_decimals(value, text):
    assert format_number(value) == text
