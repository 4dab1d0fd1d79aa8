import pytest

from evalcluster.errors import SpecError
from evalcluster.scoring.json_scorer import fenced_block

from .conftest import build_one

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ('{"a": 1}', 1.0),
        ("[1, 2, 3]", 1.0),
        ('  "just a string"  ', 1.0),
        ("null", 1.0),
        ("{'a': 1}", 0.0),  # Python dict repr, not JSON
        ('{"a": 1,}', 0.0),  # trailing comma
        ('{"a": NaN}', 0.0),  # Python accepts NaN; RFC 8259 does not
        ("Infinity", 0.0),
        ("", 0.0),
        ('Sure! {"a": 1}', 0.0),  # prose around unfenced JSON
        ('Here you go:\n```json\n{"a": 1}\n```\nAnything else?', 1.0),
        ('```JSON\n{"a": 1}\n```', 1.0),
        ("```\n[true, false]\n```", 1.0),
        ('```json\n{"a": }\n```', 0.0),
    ],
)
def test_json_validity(output: str, expected: float) -> None:
    assert build_one("json").score(output, None, {}).value == expected


def test_json_invalid_output_is_explained() -> None:
    score = build_one("json").score("{", None, {})
    assert score.value == 0.0
    assert (score.explanation or "").startswith("invalid JSON")


def test_json_without_fence_extraction_scores_whole_output() -> None:
    scorer = build_one("json", extract_fenced=False)
    assert scorer.score('```json\n{"a": 1}\n```', None, {}).value == 0.0
    assert scorer.score('{"a": 1}', None, {}).value == 1.0


def test_json_schema_validation() -> None:
    scorer = build_one("json", schema=PERSON)
    assert scorer.score('{"name": "Ada", "age": 36}', None, {}).value == 1.0
    missing = scorer.score('{"name": "Ada"}', None, {})
    assert missing.value == 0.0
    assert "'age' is a required property" in (missing.explanation or "")
    negative = scorer.score('```json\n{"name": "Ada", "age": -1}\n```', None, {})
    assert negative.value == 0.0
    assert "age" in (negative.explanation or "")
    assert scorer.score('{"name": "Ada", "age": 36, "x": 1}', None, {}).value == 0.0
    assert scorer.score("[]", None, {}).value == 0.0


def test_json_invalid_schema_is_a_spec_error() -> None:
    with pytest.raises(SpecError) as info:
        build_one("json", schema={"type": "no-such-type"})
    assert info.value.field == "scorers[0].schema"
    assert "invalid JSON Schema" in info.value.message


def test_fenced_block_prefers_the_json_fence() -> None:
    text = "```\nplain\n```\n```json\n{}\n```"
    assert fenced_block(text) == "{}\n"
    assert fenced_block("no fences") is None
