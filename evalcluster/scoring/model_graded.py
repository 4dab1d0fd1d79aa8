"""The `model_graded` scorer: a judge model grades the answer against the reference.

The scorer does not call the judge itself. The job sends `judge_messages(...)` to the target
named by `judge_target` through that target's provider actor (so the judge's calls obey its
rate limits, breaker and budget like any other), then turns the reply into a score with
`parse_verdict`. A reply of ``GRADE: C`` is correct (1.0), ``GRADE: I`` incorrect (0.0) and
``GRADE: P`` partial (`partial_credit`, 0.5 by default).

The default template wraps the reference in ``<reference>...</reference>`` and the answer in
``<answer>...</answer>`` and asks for a final ``GRADE:`` line: the project's simulator plays a
deterministic judge on exactly those tags.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator

from evalcluster.providers.base import Message
from evalcluster.scoring.base import Score, ScorerOptions
from evalcluster.scoring.registry import register_scorer

DEFAULT_TEMPLATE = """\
You are grading an answer to a question against a reference answer.

<question>
{input}
</question>

<reference>{reference}</reference>

<answer>{output}</answer>

Judge only whether the answer agrees with the reference in substance; ignore style, length \
and formatting. Explain your reasoning briefly, then end with one last line that is exactly \
one of:
GRADE: C   (the answer is correct)
GRADE: P   (the answer is partially correct)
GRADE: I   (the answer is incorrect)"""

DEFAULT_GRADE_PATTERN = r"GRADE:\s*([CPI])"
NO_REFERENCE = "(no reference answer was given)"
_PLACEHOLDER = re.compile(r"\{(input|output|reference)\}")


class JudgeRequiredError(RuntimeError):
    """`score()` was called on a scorer that needs a judge model's verdict first."""


class ModelGradedOptions(ScorerOptions):
    judge: str = Field(description="Name of the suite target that acts as the judge.")
    template: str = DEFAULT_TEMPLATE
    grade_pattern: str = DEFAULT_GRADE_PATTERN
    partial_credit: float | bool = Field(
        0.5, description="Score of a partial grade P; true means 0.5, false means 0.0."
    )

    @field_validator("template")
    @classmethod
    def _has_output(cls, value: str) -> str:
        if "{output}" not in value:
            raise ValueError("the template must contain the {output} placeholder")
        return value

    @field_validator("grade_pattern")
    @classmethod
    def _one_group(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from exc
        if compiled.groups < 1:
            raise ValueError("the grade pattern needs a capture group around the grade letter")
        return value

    @field_validator("partial_credit")
    @classmethod
    def _unit_interval(cls, value: float | bool) -> float | bool:
        if not isinstance(value, bool) and not 0.0 <= value <= 1.0:
            raise ValueError("partial_credit must be between 0 and 1")
        return value


@register_scorer("model_graded", options=ModelGradedOptions)
class ModelGradedScorer:
    """Builds the judge's prompt and reads its verdict; see the module docstring."""

    needs_judge = True

    def __init__(self, name: str, options: ModelGradedOptions) -> None:
        self.name = name
        self.judge_target = options.judge
        self.template = options.template
        self.grade_pattern = re.compile(options.grade_pattern)
        credit = options.partial_credit
        partial = (0.5 if credit else 0.0) if isinstance(credit, bool) else float(credit)
        self.grades = {"C": 1.0, "P": partial, "I": 0.0}

    def judge_messages(self, prompt: str, output: str, reference: str | None) -> list[Message]:
        """The messages to send to the judge for one answer."""
        values = {
            "input": prompt,
            "output": output,
            "reference": NO_REFERENCE if reference is None else reference,
        }
        # One pass, so braces or placeholders inside the answer are never substituted again.
        content = _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.template)
        return [Message(role="user", content=content)]

    def parse_verdict(self, text: str) -> Score:
        """The score of the judge's reply; the explanation keeps the raw reply.

        The last grade in the reply counts (the template asks for it on the last line).
        A reply without a recognisable grade is not scorable: value None.
        """
        matches = list(self.grade_pattern.finditer(text))
        if not matches:
            return Score(None, f"unparsable verdict (no {self.grade_pattern.pattern!r}): {text}")
        grade = (matches[-1].group(1) or "").strip().upper()
        if grade not in self.grades:
            return Score(None, f"unknown grade {grade!r} in verdict: {text}")
        return Score(self.grades[grade], text)

    def score(self, output: str, reference: str | None, sample: Mapping[str, Any]) -> Score:
        raise JudgeRequiredError(
            f"scorer {self.name!r} needs the judge target {self.judge_target!r}: send "
            "judge_messages(...) to it and pass its reply to parse_verdict(...)"
        )
