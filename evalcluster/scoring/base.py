"""What every scorer is: the `Score` it returns and the `Scorer` protocol it follows (and
`JudgedScorer`, for the scorers a judge model grades).

A scorer turns one model output (and the sample's reference answer) into a number, usually
1.0 for right and 0.0 for wrong. `Score.value` is None when the output could not be scored at
all (no reference, an unparsable judge verdict): such rows are left out of the statistics
instead of being counted as wrong.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard, runtime_checkable

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from evalcluster.providers.base import Message


@dataclass(frozen=True, slots=True)
class Score:
    """One scored output. `value` None means "not scorable", never "wrong"."""

    value: float | None
    explanation: str | None = None


@runtime_checkable
class Scorer(Protocol):
    """A scoring strategy, built from a `ScorerSpec` by `build_scorers`."""

    name: str  # the results column is f"score_{name}"
    needs_judge: bool  # True only for scorers that must call a judge model first

    def score(self, output: str, reference: str | None, sample: Mapping[str, Any]) -> Score:
        """Score one output against its reference; `sample` is the dataset row."""
        ...


@runtime_checkable
class JudgedScorer(Scorer, Protocol):
    """A scorer whose score is a judge model's verdict (`needs_judge` True): the job sends
    `judge_messages` to the target `judge_target` through its provider, as any other call,
    and scores the reply with `parse_verdict`; `score()` itself cannot score."""

    judge_target: str  # a target or judge of the suite

    def judge_messages(self, prompt: str, output: str, reference: str | None) -> list[Message]:
        """The messages to send to the judge about one answer."""
        ...

    def parse_verdict(self, text: str) -> Score:
        """The score of the judge's reply."""
        ...


def needs_judge(scorer: Scorer) -> TypeGuard[JudgedScorer]:
    """Whether `scorer` is scored by a judge (`build_scorers` checks that such a scorer is a
    `JudgedScorer`)."""
    return bool(getattr(scorer, "needs_judge", False))


class ScorerOptions(BaseModel):
    """Base of the options models: unknown keys are errors, so a typo names itself."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


def binary(ok: bool, explanation: str | None = None) -> Score:
    """1.0 for True, 0.0 for False."""
    return Score(1.0 if ok else 0.0, explanation)


def no_reference(scorer: str) -> Score:
    """The score of a sample that has no reference answer to compare with."""
    return Score(None, f"{scorer}: the sample has no reference answer")


def coerce_score(result: object, source: str) -> Score:
    """Turn what a user function returned (Score, bool, number, None) into a `Score`."""
    if isinstance(result, Score):
        if result.value is not None and not math.isfinite(result.value):
            return Score(None, f"{source} returned a non-finite value {result.value!r}")
        return result
    if result is None:
        return Score(None, f"{source} returned None")
    if isinstance(result, bool):
        return binary(result)
    if isinstance(result, numbers.Real):
        value = float(result)
        if not math.isfinite(value):
            return Score(None, f"{source} returned a non-finite value {value!r}")
        return Score(value)
    return Score(None, f"{source} returned {type(result).__name__}, not a float, bool or Score")
