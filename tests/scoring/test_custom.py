import pickle
import textwrap
from pathlib import Path

import pytest

from evalcluster.errors import SpecError
from evalcluster.scoring.base import Score

from .conftest import build_one

PLUGIN = textwrap.dedent(
    """
    from evalcluster.scoring.base import Score

    def as_float(output, reference, sample, weight=1.0):
        return weight * float(output.strip() == reference)

    def as_bool(output, reference, sample):
        return sample["lang"] in output

    def as_score(output, reference, sample):
        return Score(0.25, "quarter")

    def broken(output, reference, sample):
        raise KeyError("boom")

    def returns_text(output, reference, sample):
        return "yes"

    def returns_nan(output, reference, sample):
        return float("nan")

    class Nested:
        @staticmethod
        def length(output, reference, sample):
            return len(output) / 10

    NOT_CALLABLE = 3
    """
)


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forget_new_modules: None) -> str:
    (tmp_path / "my_scorers_for_test.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_scorers_for_test"


def test_custom_function_returning_float_bool_or_score(plugin: str) -> None:
    floaty = build_one("custom", function=f"{plugin}:as_float", kwargs={"weight": 0.5})
    assert floaty.score("x", "x", {}) == Score(0.5)
    assert floaty.score("x", "y", {}) == Score(0.0)
    booly = build_one("custom", function=f"{plugin}:as_bool")
    assert booly.score("print('hi') # python", None, {"lang": "python"}) == Score(1.0)
    assert booly.score("console.log()", None, {"lang": "python"}) == Score(0.0)
    assert build_one("custom", function=f"{plugin}:as_score").score("", None, {}) == Score(
        0.25, "quarter"
    )
    nested = build_one("custom", function=f"{plugin}:Nested.length")
    assert nested.score("12345", None, {}).value == 0.5


def test_custom_function_failures_leave_the_row_unscored(plugin: str) -> None:
    broken = build_one("custom", function=f"{plugin}:broken").score("", None, {})
    assert broken.value is None and "KeyError" in (broken.explanation or "")
    text = build_one("custom", function=f"{plugin}:returns_text").score("", None, {})
    assert text.value is None and "str" in (text.explanation or "")
    nan = build_one("custom", function=f"{plugin}:returns_nan").score("", None, {})
    assert nan.value is None and "non-finite" in (nan.explanation or "")


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
        ("{plugin}:missing", "has no attribute 'missing'"),
        ("{plugin}:NOT_CALLABLE", "is not callable"),
        ("just_a_name", "expected 'module:function'"),
        ("a:b:c", "expected 'module:function'"),
    ],
)
def test_custom_import_problems_fail_at_build_time(
    plugin: str, function: str, message: str
) -> None:
    with pytest.raises(SpecError) as info:
        build_one("custom", function=function.format(plugin=plugin))
    assert info.value.field == "scorers[0].function"
    assert message in info.value.message


def test_custom_requires_function() -> None:
    with pytest.raises(SpecError) as info:
        build_one("custom")
    assert info.value.field == "scorers[0].function"


def test_custom_scorer_pickles_by_function_name(plugin: str) -> None:
    scorer = build_one("custom", name="mine", function=f"{plugin}:as_float", kwargs={"weight": 2})
    clone = pickle.loads(pickle.dumps(scorer))
    assert clone.name == "mine"
    assert clone.score("a", "a", {}) == Score(2.0)
