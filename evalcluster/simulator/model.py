"""The simulator's deterministic "model": what it answers to a prompt.

Rules, in order:

0. Reference: a request that carries the sample's reference answer (a run sends it to
   ``kind: simulated`` providers in the ``x-evalcluster-reference`` header, see `reference`)
   gets that reference, verbatim, or a wrong answer. This holds for any dataset with a
   reference column (capitals, trivia, labels...), so a score's mean tracks `accuracy`.
1. Judge: a prompt holding ``<reference>...</reference>`` and ``<answer>...</answer>`` gets
   ``GRADE: C`` when the answer's key equals the reference's, else ``GRADE: I``. A key is the
   text's final number, or its normalized text (lower case, punctuation dropped, spaces
   collapsed) when it has no number. Judging is always accurate.
2. Multiple choice: lettered option lines (``A) 6``, ``B. 7``, ``(C) 8``) and an arithmetic
   question elsewhere in the prompt: the answer is the letter of the option equal to the result.
3. Arithmetic: the answer is the result (`arithmetic.format_number`), e.g. ``42``.
4. Anything else gets a short deterministic sentence, which no reference matches: without a
   reference (e.g. `evalcluster simulate` called by hand with a capitals question) such a
   prompt scores 0 whatever `accuracy` says.

For 0, 2 and 3 the answer is right with probability `accuracy`, decided by a hash of
(seed, model, prompt), so the same request always gets the same answer. With a `difficulty`
whose correlation is above 0, that hash is one model's noise beside a difficulty the item
(and its cluster) shares with every model, so models' correctness correlates (see
`difficulty`). A wrong arithmetic answer is off by one; a wrong choice is another option's
letter. A wrong answer to a reference is made to miss it under every text scorer (not equal,
neither containing the other, after case, punctuation and spacing are dropped, and no equal
final number): a numeric reference is off by one, a letter another option's letter (or
another of A-D), yes/no and true/false the opposite, anything else a decoy name such as
``Atlantis``.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Literal

from evalcluster.simulator.arithmetic import find_expression, format_number
from evalcluster.simulator.difficulty import Difficulty, is_right

ReplyKind = Literal["reference", "judge", "choice", "arithmetic", "chat"]

_REFERENCE = re.compile(r"<reference>(.*?)</reference>", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_OPTION = re.compile(r"^[^\S\n]*(?:\(([A-Z])\)|([A-Z])[.)])[^\S\n]+(\S.*?)[^\S\n]*$", re.MULTILINE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_SENTENCES = (
    "I am a simulated model and have no real answer to that.",
    "That is an interesting question; the simulator can only say so.",
    "Here is a short, deterministic reply from the simulator.",
    "The simulator read your message and has nothing more to add.",
)
_LETTER = re.compile(r"^\(?([A-Za-z])[.)]?$")
_WHOLE_NUMBER = re.compile(r"^-?\d[\d,]*(?:\.\d+)?$")
_OPPOSITES = {"yes": "no", "no": "yes", "true": "false", "false": "true"}
_DECOYS = ("Atlantis", "Eldorado", "Shangri-La", "Avalon", "Xanadu", "Camelot", "Lemuria", "Utopia")


@dataclass(frozen=True, slots=True)
class Reply:
    """What the model says and why. `correct` is None where there is no right answer."""

    text: str
    kind: ReplyKind
    correct: bool | None


def answer(
    prompt: str,
    *,
    model: str = "sim-1",
    seed: int = 0,
    accuracy: float = 1.0,
    reference: str | None = None,
    difficulty: Difficulty | None = None,
) -> str:
    """The answer text the simulator gives to `prompt` (the last user message), knowing the
    sample's `reference` answer when the request carried one."""
    return reply(
        prompt,
        model=model,
        seed=seed,
        accuracy=accuracy,
        reference=reference,
        difficulty=difficulty,
    ).text


@lru_cache(maxsize=65536)
def reply(
    prompt: str,
    *,
    model: str = "sim-1",
    seed: int = 0,
    accuracy: float = 1.0,
    reference: str | None = None,
    difficulty: Difficulty | None = None,
) -> Reply:
    """Like `answer`, with the kind of prompt recognised and whether the answer is right."""
    shared = difficulty or Difficulty()
    if reference is not None:
        draw = _draw(seed, model, prompt)
        if _right(draw, seed, prompt, accuracy, shared):
            return Reply(reference, "reference", True)
        return Reply(wrong_answer(reference, prompt, draw.pick), "reference", False)
    grade = judge(prompt)
    if grade is not None:
        return Reply(grade, "judge", None)
    draw = _draw(seed, model, prompt)
    right = _right(draw, seed, prompt, accuracy, shared)
    options = _options(prompt)
    question = _OPTION.sub("", prompt) if len(options) >= 2 else prompt
    expression = find_expression(question)
    if expression is None:
        return Reply(_SENTENCES[draw.pick % len(_SENTENCES)], "chat", None)
    correct_letter = _matching_option(options, expression.value)
    if correct_letter is not None:
        if right:
            return Reply(correct_letter, "choice", True)
        others = [letter for letter in options if letter != correct_letter]
        return Reply(others[draw.pick % len(others)], "choice", False)
    if right:
        return Reply(format_number(expression.value), "arithmetic", True)
    off_by_one = expression.value + (1 if draw.pick % 2 else -1)
    return Reply(format_number(off_by_one), "arithmetic", False)


def judge(prompt: str) -> str | None:
    """``GRADE: C`` or ``GRADE: I`` for a judge prompt; None when `prompt` is not one."""
    reference = _REFERENCE.search(prompt)
    given = _ANSWER.search(prompt)
    if reference is None or given is None:
        return None
    same = _key(reference.group(1)) == _key(given.group(1))
    return "GRADE: C" if same else "GRADE: I"


def wrong_answer(reference: str, prompt: str = "", pick: int = 0) -> str:
    """An answer that misses `reference` under every text scorer; `pick` chooses among the
    candidates (another option letter of `prompt`, an off-by-one number, a decoy)."""
    text = reference.strip()
    letter = _LETTER.match(text)
    if letter is not None:
        mark = letter.group(1)
        options = [o for o in _options(prompt) if o != mark.upper()]
        if not options:
            options = [o for o in "ABCD" if o != mark.upper()]
        choice = options[pick % len(options)]
        candidates = [choice if mark.isupper() else choice.lower()]
    elif _WHOLE_NUMBER.match(text):
        value = Fraction(text.replace(",", ""))
        candidates = [format_number(value + (1 if pick % 2 else -1))]
    elif text.lower() in _OPPOSITES:
        opposite = _OPPOSITES[text.lower()]
        candidates = [opposite.capitalize() if text[:1].isupper() else opposite]
    else:
        candidates = []
    start = pick % len(_DECOYS)
    candidates += [*_DECOYS[start:], *_DECOYS[:start]]
    for candidate in candidates:
        if not _matches(candidate, reference):
            return candidate
    return ""  # matches no reference but an empty one, which every decoy misses


def _matches(output: str, reference: str) -> bool:
    """Whether a lenient scorer could count `output` right for `reference`."""
    a, b = _loose(output), _loose(reference)
    if a == b or (a and a in b) or (b and b in a):
        return True
    x, y = _final_number(output), _final_number(reference)
    return x is not None and x == y


def _loose(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    return " ".join(text.split())


class _Draw:
    """Two independent values from one hash: `uniform` in [0, 1) and an integer `pick`."""

    __slots__ = ("uniform", "pick")

    def __init__(self, digest: bytes):
        self.uniform = int.from_bytes(digest[:8], "big") / 2**64
        self.pick = int.from_bytes(digest[8:16], "big")


def _right(draw: _Draw, seed: int, prompt: str, accuracy: float, difficulty: Difficulty) -> bool:
    if not difficulty.shared:  # the plain rule, kept exactly as it always was
        return draw.uniform < accuracy
    return is_right(
        seed=seed,
        prompt=prompt,
        accuracy=accuracy,
        noise_uniform=draw.uniform,
        difficulty=difficulty,
    )


def _draw(seed: int, model: str, prompt: str) -> _Draw:
    material = f"{seed}\x1f{model}\x1f{prompt}".encode()
    return _Draw(hashlib.blake2b(material, digest_size=16).digest())


def _options(prompt: str) -> dict[str, str]:
    """Lettered option lines, letter -> option text, in order of appearance."""
    options: dict[str, str] = {}
    for m in _OPTION.finditer(prompt):
        letter = m.group(1) or m.group(2)
        options.setdefault(letter, m.group(3))
    return options


def _matching_option(options: dict[str, str], value: Fraction) -> str | None:
    if len(options) < 2:
        return None
    for letter, text in options.items():
        number = _final_number(text)
        if number is not None and number == value:
            return letter
    return None


def _final_number(text: str) -> Fraction | None:
    numbers = _NUMBER.findall(text)
    if not numbers:
        return None
    return Fraction(numbers[-1].replace(",", ""))


def _key(text: str) -> Fraction | str:
    number = _final_number(text)
    if number is not None:
        return number
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())
