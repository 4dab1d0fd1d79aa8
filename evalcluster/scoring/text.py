"""Text-matching scorers: `exact`, `includes` and `regex`."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import field_validator

from evalcluster.errors import SpecError
from evalcluster.scoring.base import Score, ScorerOptions, binary, no_reference
from evalcluster.scoring.registry import register_scorer

_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Normalizer:
    """How two strings are made comparable before they are compared."""

    ignore_case: bool = True
    strip: bool = True
    normalize_whitespace: bool = True
    strip_punctuation: bool = False

    def __call__(self, text: str) -> str:
        # NFKC so that full-width digits, ligatures and non-breaking spaces compare equal.
        text = unicodedata.normalize("NFKC", text)
        if self.strip_punctuation:
            text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))
        if self.normalize_whitespace:
            text = _WHITESPACE.sub(" ", text)
        if self.strip:
            text = text.strip()
        if self.ignore_case:
            text = text.casefold()
        return text


class ExactOptions(ScorerOptions):
    ignore_case: bool = True
    strip: bool = True
    normalize_whitespace: bool = True
    strip_punctuation: bool = False


@register_scorer("exact", options=ExactOptions)
class ExactScorer:
    """1.0 when the output equals the reference after normalisation, else 0.0."""

    needs_judge = False

    def __init__(self, name: str, options: ExactOptions) -> None:
        self.name = name
        self.normalize = Normalizer(**options.model_dump())

    def score(self, output: str, reference: str | None, sample: Mapping[str, Any]) -> Score:
        if reference is None:
            return no_reference(self.name)
        return binary(self.normalize(output) == self.normalize(reference))


class IncludesOptions(ScorerOptions):
    ignore_case: bool = True
    normalize_whitespace: bool = True


@register_scorer("includes", options=IncludesOptions)
class IncludesScorer:
    """1.0 when the reference appears anywhere in the output."""

    needs_judge = False

    def __init__(self, name: str, options: IncludesOptions) -> None:
        self.name = name
        self.normalize = Normalizer(
            ignore_case=options.ignore_case,
            normalize_whitespace=options.normalize_whitespace,
            strip=True,
        )

    def score(self, output: str, reference: str | None, sample: Mapping[str, Any]) -> Score:
        if reference is None:
            return no_reference(self.name)
        needle = self.normalize(reference)
        if not needle:
            return Score(None, f"{self.name}: the reference is empty")
        return binary(needle in self.normalize(output))


class RegexOptions(ScorerOptions):
    pattern: str
    group: int | str | None = None
    ignore_case: bool = False
    occurrence: Literal["first", "last"] = "first"

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from exc
        return value


@register_scorer("regex", options=RegexOptions)
class RegexScorer:
    """Searches the output for `pattern`.

    Without `group`, or when the sample has no reference, a match scores 1.0. With `group`
    and a reference, the captured group (stripped) must equal the reference (stripped; and
    case-folded when `ignore_case`). `occurrence: last` uses the last match, which suits
    "final answer" patterns in chain-of-thought outputs.
    """

    needs_judge = False

    def __init__(self, name: str, options: RegexOptions) -> None:
        self.name = name
        flags = re.IGNORECASE if options.ignore_case else 0
        self.pattern = re.compile(options.pattern, flags)
        self.group = options.group
        self.ignore_case = options.ignore_case
        self.last = options.occurrence == "last"
        if isinstance(self.group, int) and not 0 <= self.group <= self.pattern.groups:
            raise SpecError(
                f"group {self.group} does not exist: the pattern has {self.pattern.groups}",
                field="group",
            )
        if isinstance(self.group, str) and self.group not in self.pattern.groupindex:
            raise SpecError(f"the pattern has no group named {self.group!r}", field="group")

    def score(self, output: str, reference: str | None, sample: Mapping[str, Any]) -> Score:
        match = self._find(output)
        if match is None:
            return Score(0.0, "no match")
        if self.group is None or reference is None:
            return Score(1.0)
        captured = match.group(self.group)
        if captured is None:
            return Score(0.0, f"group {self.group!r} did not take part in the match")
        got, want = captured.strip(), reference.strip()
        if self.ignore_case:
            got, want = got.casefold(), want.casefold()
        return binary(got == want, None if got == want else f"captured {captured.strip()!r}")

    def _find(self, output: str) -> re.Match[str] | None:
        if not self.last:
            return self.pattern.search(output)
        found = None
        for found in self.pattern.finditer(output):  # noqa: B007 - we want the last one
            pass
        return found
