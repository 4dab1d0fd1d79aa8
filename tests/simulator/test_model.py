import pytest

from evalcluster.simulator.model import answer, judge, reply


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("What is 17 + 25? Answer with the number only.", "42"),
        ("What is 5 * 6? Answer with the number only.", "30"),
        ("What is 164 - 414? Answer with the number only.", "-250"),
        ("What is 9 / 4?", "2.25"),
    ],
)
def test_arithmetic_prompts_get_the_number(prompt, expected):
    assert answer(prompt) == expected
    assert reply(prompt).kind == "arithmetic"


@pytest.mark.parametrize(
    "options",
    [
        "A) 13\nB) 14\nC) 15",
        "A. 13\nB. 14\nC. 15",
        "(A) 13\n(B) 14\n(C) 15",
    ],
)
def test_multiple_choice_gets_the_letter_of_the_option_equal_to_the_result(options):
    prompt = f"What is (3 + 4) * 2?\n{options}\nAnswer with the letter."
    assert answer(prompt) == "B"
    assert reply(prompt).kind == "choice"


def test_multiple_choice_without_a_matching_option_answers_the_number():
    assert answer("What is 2 + 2?\nA) 5\nB) 6") == "4"


@pytest.mark.parametrize(
    ("reference", "given", "grade"),
    [
        ("42", "The answer is 42", "GRADE: C"),
        ("42", "I think 41", "GRADE: I"),
        ("1,234", "1234.0", "GRADE: C"),
        ("Paris", "paris.", "GRADE: C"),
        ("Paris", "Lyon", "GRADE: I"),
        ("7", "seven", "GRADE: I"),
    ],
)
def test_judge_compares_final_numbers_or_normalized_text(reference, given, grade):
    prompt = f"Grade this.\n<reference>{reference}</reference>\n<answer>{given}</answer>"
    assert judge(prompt) == grade
    # Judging is exact whatever the accuracy, and wins over the arithmetic inside it.
    assert answer(prompt + "\nWhat is 1 + 1?", accuracy=0.0) == grade


def test_prompts_that_are_not_questions_get_a_deterministic_sentence():
    first = answer("Tell me about the weather.")
    assert first == answer("Tell me about the weather.")
    assert first.endswith(".") and len(first.split()) >= 5
    assert reply("Tell me about the weather.").correct is None


def test_accuracy_is_honoured_over_many_prompts():
    prompts = [f"What is {i} + {i * 7 % 13}? Answer with the number only." for i in range(500)]
    replies = [reply(p, model="sim-1", seed=3, accuracy=0.7) for p in prompts]
    right = sum(r.correct for r in replies)
    assert 320 <= right <= 380  # 350 expected; binomial sd is about 10
    for p, r in zip(prompts, replies, strict=True):
        truth = int(answer(p, accuracy=1.0))
        assert int(r.text) == truth if r.correct else abs(int(r.text) - truth) == 1


def test_the_same_request_always_gets_the_same_answer_and_seeds_differ():
    prompts = [f"What is {i} * 3?" for i in range(200)]
    first = [answer(p, seed=1, accuracy=0.5) for p in prompts]
    assert first == [answer(p, seed=1, accuracy=0.5) for p in prompts]
    assert first != [answer(p, seed=2, accuracy=0.5) for p in prompts]
    assert first != [answer(p, model="other", seed=1, accuracy=0.5) for p in prompts]


def test_a_wrong_choice_is_another_offered_letter():
    letters = set()
    for i in range(60):
        prompt = f"Q{i}: what is {i} + 1?\nA) {i + 1}\nB) {i + 2}\nC) {i + 3}\nD) {i + 4}"
        r = reply(prompt, accuracy=0.0)
        assert r.kind == "choice" and r.correct is False
        letters.add(r.text)
    assert letters == {"B", "C", "D"}
