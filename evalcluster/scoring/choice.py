"""The `choice` scorer: which lettered option (A/B/C/D...) did the output choose?

`extract_choice` tries these readings in order and the first that finds a letter wins:

1. the whole output is the letter: ``B``, ``(B)``, ``B)``, ``B.``, ``[b]``, ``**B**``;
2. an explicit statement, the last one if several: ``Answer: B``, ``The answer is (C).``,
   ``Final answer: **D**``, ``the correct option is B``. The letter must be upper case
   ("The answer is a bit unclear" chooses nothing), except right after ``answer:``;
3. the output opens with a labelled option: ``B) Paris``, ``(B) Paris``, ``B. Paris``,
   ``B: Paris``, ``B - Paris`` (unless another letter appears in brackets later on);
4. the last bracketed letter anywhere: ``(A) is wrong, so I pick (C) here``.

Otherwise nothing was chosen and the output scores 0.0.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import field_validator

from evalcluster.scoring.base import Score, ScorerOptions, no_reference
from evalcluster.scoring.registry import register_scorer

_END = r"(?=$|[\s.,;:!?)\]*])"


class ChoiceExtractor:
    """Finds the chosen letter among `choices` (upper case) in a free-text answer."""

    def __init__(self, choices: str) -> None:
        self.choices = choices
        up, low = re.escape(choices), re.escape(choices.lower())
        self._alone = re.compile(rf"^\W*?[(\[]?\s*([{up}{low}])\s*[)\]]?[.:]?\W*$")
        self._stated = (
            re.compile(
                rf"(?i:\b(?:answer|option|choice))(?:\s+(?i:is))?\s*[:=]?\s*"
                rf"(?:(?i:option|choice)\s+)?\**[(\[]?([{up}])[)\]]?\**{_END}"
            ),
            re.compile(rf"(?i:\banswer)\s*:\s*\**[(\[]?([{low}])[)\]]?\**{_END}"),
        )
        self._leading = re.compile(
            rf"^\s*\**(?:[(\[]([{up}{low}])[)\]]|([{up}{low}])\)|([{up}])\**\s*[.:\-])\s"
        )
        self._bracketed = re.compile(rf"[(\[]([{up}])[)\]]")

    def __call__(self, text: str) -> str | None:
        """The chosen letter, upper case, or None when the text chooses none."""
        text = text.strip()
        match = self._alone.match(text)
        if match:
            return match.group(1).upper()
        stated = [m for pattern in self._stated for m in pattern.finditer(text)]
        if stated:
            return max(stated, key=lambda m: m.start()).group(1).upper()
        bracketed = self._bracketed.findall(text)
        match = self._leading.match(text + " ")
        if match:
            leading = next(g for g in match.groups() if g).upper()
            if set(bracketed) <= {leading}:
                return leading
        return bracketed[-1] if bracketed else None


class ChoiceOptions(ScorerOptions):
    choices: str = "ABCD"

    @field_validator("choices")
    @classmethod
    def _letters(cls, value: str) -> str:
        value = value.upper()
        if len(value) < 2 or not all("A" <= ch <= "Z" for ch in value):
            raise ValueError("choices must be two or more letters, e.g. 'ABCD'")
        if len(set(value)) != len(value):
            raise ValueError(f"choices {value!r} repeat a letter")
        return value


@register_scorer("choice", options=ChoiceOptions)
class ChoiceScorer:
    """1.0 when the letter the output chose is the reference letter."""

    needs_judge = False

    def __init__(self, name: str, options: ChoiceOptions) -> None:
        self.name = name
        self.extract = ChoiceExtractor(options.choices)

    def score(self, output: str, reference: str | None, sample: Mapping[str, Any]) -> Score:
        if reference is None:
            return no_reference(self.name)
        want = self.extract(str(reference))
        if want is None:
            choices = self.extract.choices
            return Score(None, f"{self.name}: the reference {reference!r} is not one of {choices}")
        got = self.extract(output)
        if got is None:
            return Score(0.0, "no choice found in the output")
        return Score(1.0 if got == want else 0.0, f"chose {got}")
