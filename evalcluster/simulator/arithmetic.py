"""Find and evaluate the arithmetic question in a prompt, exactly (no `eval`).

Expressions are integers or decimals joined by ``+ - * /`` (also ``× ÷ −``) with parentheses
and unary minus, evaluated with `fractions.Fraction` so ``7 / 2`` is exactly 3.5. In a prompt
the last expression holding at least one binary operator is the question: "What is 17 + 25?"
gives 42, while "Answer with the number only." or an option line "A) 6" gives nothing.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from typing import NamedTuple

# Longer numbers are not questions anyone asks; the cap keeps evaluation cheap.
_MAX_DIGITS = 30
_MAX_RUN_TOKENS = 64
_LEX = re.compile(r"(\d+(?:\.\d+)?)|([-+*/×÷−()])|([^\S\n]+)|(\n|.)")
_OPS = {"×": "*", "÷": "/", "−": "-"}


class Expression(NamedTuple):
    """An arithmetic expression found in a text and its exact value."""

    text: str
    value: Fraction


class _Parsed(NamedTuple):
    value: Fraction
    end: int  # index of the first token not consumed
    binary_ops: int


_Token = Fraction | str


def find_expression(text: str) -> Expression | None:
    """The last arithmetic expression in `text` with at least one binary operator, or None."""
    found: Expression | None = None
    for run, spans in _runs(text):
        start = 0
        while start < len(run):
            parsed = _parse_expr(run, start)
            if parsed is not None and parsed.binary_ops > 0:
                source = text[spans[start][0] : spans[parsed.end - 1][1]]
                found = Expression(source, parsed.value)
                start = parsed.end
            else:
                start += 1
    return found


def evaluate(expression: str) -> Fraction:
    """Value of a whole arithmetic expression. Raises ValueError if it is not one."""
    runs = list(_runs(expression))
    if len(runs) == 1:
        run, _ = runs[0]
        parsed = _parse_expr(run, 0)
        if parsed is not None and parsed.end == len(run):
            return parsed.value
    raise ValueError(f"not an arithmetic expression: {expression[:80]!r}")


def format_number(value: Fraction) -> str:
    """An integer as digits; otherwise a decimal with at most 6 places, trailing zeros cut."""
    if value.denominator == 1:
        return str(value.numerator)
    with localcontext() as ctx:
        ctx.prec = 200
        exact = Decimal(value.numerator) / Decimal(value.denominator)
        text = format(exact.quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN), "f")
    text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _runs(text: str) -> list[tuple[list[_Token], list[tuple[int, int]]]]:
    """Maximal stretches of number/operator/parenthesis tokens on one line, with their spans."""
    runs: list[tuple[list[_Token], list[tuple[int, int]]]] = []
    tokens: list[_Token] = []
    spans: list[tuple[int, int]] = []
    for m in _LEX.finditer(text):
        number, op, space, _other = m.groups()
        if number is not None and len(number) <= _MAX_DIGITS:
            tokens.append(Fraction(number))
        elif op is not None:
            tokens.append(_OPS.get(op, op))
        elif space is not None:
            continue
        else:
            if tokens:
                runs.append((tokens, spans))
            tokens, spans = [], []
            continue
        spans.append(m.span())
        if len(tokens) >= _MAX_RUN_TOKENS:
            runs.append((tokens, spans))
            tokens, spans = [], []
    if tokens:
        runs.append((tokens, spans))
    return runs


def _parse_expr(tokens: list[_Token], i: int) -> _Parsed | None:
    """expr := term (('+'|'-') term)*, as long a prefix from `i` as parses."""
    left = _parse_term(tokens, i)
    if left is None:
        return None
    value, pos, ops = left
    while pos < len(tokens) and tokens[pos] in ("+", "-"):
        right = _parse_term(tokens, pos + 1)
        if right is None:
            break
        value = value + right.value if tokens[pos] == "+" else value - right.value
        pos, ops = right.end, ops + right.binary_ops + 1
    return _Parsed(value, pos, ops)


def _parse_term(tokens: list[_Token], i: int) -> _Parsed | None:
    """term := unary (('*'|'/') unary)*; division by zero ends the term before the '/'."""
    left = _parse_unary(tokens, i)
    if left is None:
        return None
    value, pos, ops = left
    while pos < len(tokens) and tokens[pos] in ("*", "/"):
        right = _parse_unary(tokens, pos + 1)
        if right is None or (tokens[pos] == "/" and right.value == 0):
            break
        value = value * right.value if tokens[pos] == "*" else value / right.value
        pos, ops = right.end, ops + right.binary_ops + 1
    return _Parsed(value, pos, ops)


def _parse_unary(tokens: list[_Token], i: int) -> _Parsed | None:
    """unary := ('-'|'+') unary | NUMBER | '(' expr ')'."""
    if i >= len(tokens):
        return None
    token = tokens[i]
    if token in ("-", "+"):
        inner = _parse_unary(tokens, i + 1)
        if inner is None:
            return None
        return inner._replace(value=-inner.value) if token == "-" else inner
    if isinstance(token, Fraction):
        return _Parsed(token, i + 1, 0)
    if token == "(":
        inner = _parse_expr(tokens, i + 1)
        if inner is None or inner.end >= len(tokens) or tokens[inner.end] != ")":
            return None
        return inner._replace(end=inner.end + 1)
    return None
