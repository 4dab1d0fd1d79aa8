import re

import pytest

from evalcluster.errors import SpecError
from evalcluster.providers.base import Message
from evalcluster.scoring import JudgeRequiredError, ModelGradedScorer, build_scorers
from evalcluster.scoring.model_graded import DEFAULT_TEMPLATE, NO_REFERENCE
from evalcluster.suite.models import ScorerSpec

from .conftest import build_one


def test_model_graded_exposes_judge_api() -> None:
    scorer = build_one("model_graded", judge="judge-model", name="graded")
    assert isinstance(scorer, ModelGradedScorer)
    assert scorer.needs_judge is True
    assert scorer.judge_target == "judge-model"
    assert scorer.name == "graded"


def test_default_template_tags_reference_and_answer() -> None:
    scorer = build_one("model_graded", judge="j")
    messages = scorer.judge_messages("What is 2+2?", "It is 4.", "4")
    assert len(messages) == 1 and isinstance(messages[0], Message)
    assert messages[0].role == "user"
    text = messages[0].content
    assert re.search(r"<reference>4</reference>", text)
    assert re.search(r"<answer>It is 4\.</answer>", text)
    assert "What is 2+2?" in text
    assert "GRADE: C" in text and "GRADE: I" in text and "GRADE: P" in text
    assert text.rstrip().splitlines()[-1].startswith("GRADE: I")


def test_judge_messages_do_not_resubstitute_placeholders_in_the_answer() -> None:
    scorer = build_one("model_graded", judge="j")
    text = scorer.judge_messages("q", "I say {reference} and {x}", "secret")[0].content
    assert "<answer>I say {reference} and {x}</answer>" in text
    assert text.count("secret") == 1


def test_judge_messages_without_reference() -> None:
    text = build_one("model_graded", judge="j").judge_messages("q", "a", None)[0].content
    assert f"<reference>{NO_REFERENCE}</reference>" in text


def test_custom_template_keeps_literal_braces() -> None:
    template = 'Q: {input}\nA: {output}\nReply as {"grade": "C"} then GRADE: C or GRADE: I'
    scorer = build_one("model_graded", judge="j", template=template)
    text = scorer.judge_messages("why?", "because", "ref")[0].content
    assert text == 'Q: why?\nA: because\nReply as {"grade": "C"} then GRADE: C or GRADE: I'


@pytest.mark.parametrize(
    ("verdict", "value"),
    [
        ("The answer matches.\nGRADE: C", 1.0),
        ("Wrong number.\nGRADE: I", 0.0),
        ("Half right.\nGRADE: P", 0.5),
        ("GRADE:C", 1.0),
        ("I considered GRADE: C but on reflection\nGRADE: I", 0.0),  # the last grade counts
    ],
)
def test_parse_verdict(verdict: str, value: float) -> None:
    score = build_one("model_graded", judge="j").parse_verdict(verdict)
    assert score.value == value
    assert score.explanation == verdict


@pytest.mark.parametrize("verdict", ["", "Looks right to me.", "grade: correct"])
def test_unparsable_verdict_is_unscored(verdict: str) -> None:
    score = build_one("model_graded", judge="j").parse_verdict(verdict)
    assert score.value is None
    assert "unparsable verdict" in (score.explanation or "")
    assert verdict in (score.explanation or "")


def test_partial_credit_option() -> None:
    assert build_one("model_graded", judge="j", partial_credit=0.25).parse_verdict(
        "GRADE: P"
    ).value == pytest.approx(0.25)
    assert build_one("model_graded", judge="j", partial_credit=False).parse_verdict(
        "GRADE: P"
    ).value == pytest.approx(0.0)
    assert build_one("model_graded", judge="j", partial_credit=True).parse_verdict(
        "GRADE: P"
    ).value == pytest.approx(0.5)


def test_custom_grade_pattern() -> None:
    scorer = build_one("model_graded", judge="j", grade_pattern=r"VERDICT=(\w)")
    assert scorer.parse_verdict("VERDICT=c").value == 1.0
    unknown = scorer.parse_verdict("VERDICT=X")
    assert unknown.value is None and "unknown grade 'X'" in (unknown.explanation or "")


def test_plain_score_says_it_needs_the_judge() -> None:
    scorer = build_one("model_graded", judge="gpt-judge")
    with pytest.raises(JudgeRequiredError, match="needs the judge target 'gpt-judge'"):
        scorer.score("out", "ref", {})


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({}, "judge", "option 'judge' is required"),
        ({"judge": "j", "template": "no placeholder"}, "template", "{output}"),
        ({"judge": "j", "grade_pattern": "GRADE: [CPI]"}, "grade_pattern", "capture group"),
        ({"judge": "j", "grade_pattern": "("}, "grade_pattern", "invalid regular expression"),
        ({"judge": "j", "partial_credit": 1.5}, "partial_credit", "between 0 and 1"),
    ],
)
def test_model_graded_bad_options(options: dict, field: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        build_one("model_graded", **options)
    assert info.value.field == f"scorers[0].{field}"
    assert message in info.value.message


def test_judge_must_be_a_suite_target_when_targets_are_known() -> None:
    specs = [ScorerSpec(type="model_graded", judge="judge")]
    assert build_scorers(specs, targets=["model", "judge"])[0].judge_target == "judge"
    with pytest.raises(SpecError) as info:
        build_scorers(specs, targets=["model"])
    assert info.value.field == "scorers[0].judge"
    assert "not a target" in info.value.message


def test_default_template_is_the_documented_one() -> None:
    assert "{input}" in DEFAULT_TEMPLATE and "{output}" in DEFAULT_TEMPLATE
    assert "<reference>{reference}</reference>" in DEFAULT_TEMPLATE
    assert "<answer>{output}</answer>" in DEFAULT_TEMPLATE
