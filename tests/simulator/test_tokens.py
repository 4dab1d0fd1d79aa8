import pytest

from evalcluster.simulator.tokens import count_tokens, truncate_tokens


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("   \n\t", 0),
        ("What is 17 + 25?", 6),
        ("don't", 3),
        ("GRADE: C", 3),
        ("naïve café", 2),
        ("(3+4)*2", 7),
    ],
)
def test_count_tokens_counts_word_runs_and_single_symbols(text, expected):
    assert count_tokens(text) == expected


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 100])
def test_truncate_tokens_keeps_exactly_the_first_n_tokens(n):
    text = "The answer, surely, is 42 (forty-two)."
    cut = truncate_tokens(text, n)
    assert text.startswith(cut)
    assert count_tokens(cut) == min(n, count_tokens(text))


def test_truncate_tokens_cuts_right_after_the_last_kept_token():
    assert truncate_tokens("alpha  beta gamma", 2) == "alpha  beta"
