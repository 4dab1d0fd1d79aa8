"""The `numeric` scorer: the final number of the output against the reference number.

What counts as a number (see `extract_numbers`):

- integers and decimals, with an optional sign: ``42``, ``-3``, ``+7``, ``3.5``, ``.5``,
  and the Unicode minus ``−3``;
- thousands separators of exactly three digits: ``1,234`` and ``1,234,567.5`` (so the list
  ``1,2,3`` is three numbers and ``3,5`` is 3 and 5: decimal commas are not supported);
- scientific notation: ``1e-6``, ``2.5E3``;
- fractions of two integers: ``1/2`` is 0.5, ``-3/4`` is -0.75 (a zero denominator is not a
  number, and ``1/2/2024`` is read as the numbers 1, 2 and 2024);
- currency symbols and a trailing ``%`` are ignored: ``$1,234`` is 1234 and ``50%`` is 50.

A sign counts only when it does not follow a letter or digit, so in ``3-5`` the final number
is 5, not -5. A sentence's closing period is not a decimal point: "The answer is 42." is 42.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from evalcluster.scoring.base import Score, ScorerOptions, no_reference
from evalcluster.scoring.registry import register_scorer

_NUMBER = re.compile(
    r"""
    (?<![\w.])                               # not glued to a word, a digit or a decimal point
    (?P<sign>[-+\u2212])?
    (?:
        (?<!/)(?P<num>\d+)/(?P<den>\d+)(?![\d/]|\.\d)  # a fraction of two integers, not a date
      |
        (?P<int>\d{1,3}(?:,\d{3})+|\d+)?     # integer part, maybe with thousands separators
        (?P<frac>\.\d+)?                     # decimal part; "42." leaves the dot alone
        (?P<exp>[eE][-+]?\d+)?
    )
    """,
    re.VERBOSE,
)


def extract_numbers(text: str) -> list[float]:
    """Every number in `text`, in order, as the module docstring defines them."""
    numbers = []
    for match in _NUMBER.finditer(text):
        value = _to_float(match)
        if value is not None:
            numbers.append(value)
    return numbers


def final_number(text: str) -> float | None:
    """The last number in `text`, or None when it has none."""
    # Converting only from the end: a scorer reads this once per row of every shard.
    for match in reversed(list(_NUMBER.finditer(text))):
        value = _to_float(match)
        if value is not None:
            return value
    return None


def _to_float(match: re.Match[str]) -> float | None:
    if match["num"] is not None:
        denominator = int(match["den"])
        if denominator == 0:
            return None
        # Exact: int / int is correctly rounded, the value float(Fraction(num, den)) gives.
        value = int(match["num"]) / denominator
    elif match["int"] is None and match["frac"] is None:
        return None  # a lone sign or an exponent without a mantissa
    else:
        # float() of a decimal string is correctly rounded too, at a fraction of Fraction's
        # cost; beyond a float's range it reads as infinity (exact arithmetic on
        # "1e999999999" would take forever).
        mantissa = (match["int"] or "0").replace(",", "") + (match["frac"] or "")
        value = float(mantissa + (match["exp"] or ""))
    negative = match["sign"] in ("-", "\u2212")
    return -value if negative and value else value


class NumericOptions(ScorerOptions):
    tolerance: float = Field(1e-6, ge=0, description="Absolute tolerance.")
    relative: float = Field(0.0, ge=0, description="Relative tolerance, of the larger value.")


@register_scorer("numeric", options=NumericOptions)
class NumericScorer:
    """1.0 when the output's final number is within tolerance of the reference's number.

    Within tolerance means ``|x - ref| <= max(tolerance, relative * max(|x|, |ref|))``
    (`math.isclose`). An output without a number scores 0.0; a reference without one
    cannot be scored (None).
    """

    needs_judge = False

    def __init__(self, name: str, options: NumericOptions) -> None:
        self.name = name
        self.tolerance = options.tolerance
        self.relative = options.relative

    def score(self, output: str, reference: str | None, sample: Mapping[str, Any]) -> Score:
        if reference is None:
            return no_reference(self.name)
        want = final_number(str(reference))
        if want is None:
            return Score(None, f"{self.name}: the reference {reference!r} has no number")
        got = final_number(output)
        if got is None:
            return Score(0.0, "no number in the output")
        ok = math.isclose(got, want, rel_tol=self.relative, abs_tol=self.tolerance)
        return Score(1.0 if ok else 0.0, None if ok else f"read {got:g}, expected {want:g}")
