import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from evalcluster.errors import SpecError
from evalcluster.scoring import (
    JudgedScorer,
    Score,
    Scorer,
    build_scorers,
    needs_judge,
    register_scorer,
    scorer_types,
)
from evalcluster.scoring.base import ScorerOptions
from evalcluster.suite.models import ScorerSpec, SuiteSpec

BUILTINS = {"exact", "includes", "regex", "numeric", "choice", "json", "custom", "model_graded"}


def test_builtin_types_are_registered() -> None:
    assert set(scorer_types()) >= BUILTINS


def test_build_scorers_keeps_order_and_names() -> None:
    scorers = build_scorers(
        [ScorerSpec(type="numeric"), ScorerSpec(type="exact", name="em", ignore_case=False)]
    )
    assert [s.name for s in scorers] == ["numeric", "em"]
    assert all(isinstance(s, Scorer) and s.needs_judge is False for s in scorers)


def test_build_scorers_from_a_suite_yaml_mapping() -> None:
    suite = SuiteSpec.model_validate(
        {
            "name": "s",
            "dataset": {"path": "d.jsonl"},
            "prompt": "{input}",
            "scorers": [{"type": "regex", "pattern": "(\\d+)", "group": 1}, {"type": "json"}],
            "targets": [{"name": "t", "provider": "p", "model": "m"}],
        }
    )
    regex, json_scorer = build_scorers(suite.scorers)
    assert regex.score("it is 7", "7", {}).value == 1.0
    assert json_scorer.score("{}", None, {}).value == 1.0


def test_unknown_type_suggests_the_closest() -> None:
    with pytest.raises(SpecError) as info:
        build_scorers([ScorerSpec(type="exact"), ScorerSpec(type="numerci")])
    assert info.value.field == "scorers[1].type"
    assert "did you mean 'numeric'?" in info.value.message
    assert str(info.value).startswith("scorers[1].type: unknown scorer type 'numerci'")


def test_unknown_option_is_named_with_suggestion() -> None:
    with pytest.raises(SpecError) as info:
        build_scorers([ScorerSpec(type="numeric", tolerence=0.1)])
    assert info.value.field == "scorers[0].tolerence"
    assert "did you mean 'tolerance'?" in info.value.message


def test_wrongly_typed_option_is_named() -> None:
    with pytest.raises(SpecError) as info:
        build_scorers([ScorerSpec(type="exact", ignore_case="sometimes")])
    assert info.value.field == "scorers[0].ignore_case"


def test_duplicate_scorer_names_are_rejected() -> None:
    with pytest.raises(SpecError) as info:
        build_scorers([ScorerSpec(type="exact"), ScorerSpec(type="exact")])
    assert info.value.field == "scorers[1].name"


def test_invalid_regex_is_a_spec_error() -> None:
    with pytest.raises(SpecError) as info:
        build_scorers([ScorerSpec(type="regex", pattern="([a-z]")])
    assert info.value.field == "scorers[0].pattern"
    with pytest.raises(SpecError) as info:
        build_scorers([ScorerSpec(type="regex", pattern="(a)", group="nope")])
    assert info.value.field == "scorers[0].group"


class _LengthOptions(ScorerOptions):
    limit: int


@pytest.mark.usefixtures("isolated_registry")
def test_decorator_registers_a_new_type_with_validated_options() -> None:
    @register_scorer("short_enough", options=_LengthOptions)
    class ShortEnough:
        needs_judge = False

        def __init__(self, name: str, options: _LengthOptions) -> None:
            self.name, self.limit = name, options.limit

        def score(self, output: str, reference: str | None, sample: Mapping[str, Any]) -> Score:
            return Score(float(len(output) <= self.limit))

    (scorer,) = build_scorers([ScorerSpec(type="short_enough", limit=3)])
    assert scorer.score("abc", None, {}).value == 1.0
    assert scorer.score("abcd", None, {}).value == 0.0
    assert "short_enough" in scorer_types()
    with pytest.raises(SpecError) as info:
        build_scorers([ScorerSpec(type="short_enough", limit="many")])
    assert info.value.field == "scorers[0].limit"


@pytest.mark.usefixtures("isolated_registry")
def test_factory_errors_become_spec_errors() -> None:
    @register_scorer("picky")
    def picky(name: str, options: dict[str, Any]) -> Scorer:
        raise ValueError(f"cannot use {sorted(options)}")

    @register_scorer("not_a_scorer")
    def not_a_scorer(name: str, options: dict[str, Any]) -> object:
        return object()

    with pytest.raises(SpecError) as info:
        build_scorers([ScorerSpec(type="picky", x=1)])
    assert info.value.field == "scorers[0]" and "cannot use ['x']" in info.value.message
    with pytest.raises(SpecError) as info:
        build_scorers([ScorerSpec(type="not_a_scorer")])
    assert info.value.field == "scorers[0].type"


@pytest.mark.usefixtures("isolated_registry")
def test_a_scorer_that_needs_a_judge_must_be_a_judged_scorer() -> None:
    class Half:
        needs_judge = True

        def __init__(self, name: str, options: dict[str, Any]) -> None:
            self.name = name

        def score(self, output: str, reference: str | None, sample: Mapping[str, Any]) -> Score:
            return Score(None)

    class Whole(Half):
        judge_target = "j"

        def judge_messages(self, prompt: str, output: str, reference: str | None) -> list:
            return []

        def parse_verdict(self, text: str) -> Score:
            return Score(1.0)

    register_scorer("half_judged")(Half)
    register_scorer("judged")(Whole)
    with pytest.raises(SpecError) as info:
        build_scorers([ScorerSpec(type="half_judged")])
    assert info.value.field == "scorers[0].type" and "judge_messages" in info.value.message
    (scorer,) = build_scorers([ScorerSpec(type="judged")], targets=["j"])
    assert isinstance(scorer, JudgedScorer) and needs_judge(scorer)
    assert not needs_judge(build_scorers([ScorerSpec(type="exact")])[0])


PLUGIN_MODULE = textwrap.dedent(
    """
    from evalcluster.scoring.base import Score

    class WordCount:
        needs_judge = False

        def __init__(self, name, options):
            self.name = name
            self.words = int(options.get("words", 3))

        def score(self, output, reference, sample):
            return Score(float(len(output.split()) == self.words))

    def make(name, options):
        return WordCount(name, options)
    """
)


@pytest.mark.usefixtures("isolated_registry", "forget_new_modules")
def test_entry_point_plugin_adds_a_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real installed distribution (a .dist-info on sys.path) declares the entry point."""
    (tmp_path / "wordcount_plugin_for_test.py").write_text(PLUGIN_MODULE)
    dist = tmp_path / "wordcount_plugin_for_test-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: wordcount-plugin-for-test\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[evalcluster.scorers]\n"
        "word_count = wordcount_plugin_for_test:make\n"
        "broken_plugin = wordcount_plugin_for_test:missing\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    assert "word_count" in scorer_types()
    (scorer,) = build_scorers([ScorerSpec(type="word_count", name="wc", words=2)])
    assert scorer.name == "wc"
    assert scorer.score("two words", None, {}).value == 1.0
    assert scorer.score("now three words", None, {}).value == 0.0
    with pytest.raises(SpecError) as info:
        build_scorers([ScorerSpec(type="word_cont")])
    assert "did you mean 'word_count'?" in info.value.message
    with pytest.raises(SpecError) as info:
        build_scorers([ScorerSpec(type="broken_plugin")])
    assert info.value.field == "scorers[0].type" and "failed to load" in info.value.message
