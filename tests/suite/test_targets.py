"""`suite/targets.py`: the one rule for choosing which of a suite's targets a run evaluates."""

from __future__ import annotations

import pytest

from evalcluster.errors import SpecError
from evalcluster.suite import load_suite
from evalcluster.suite.targets import check_target_names, select_targets
from tests.suite.test_loader import write_suite

SUITE = """
name: demo
dataset: {path: data.jsonl, id: id, input: question, target: answer}
prompt: "What is {question}?"
scorers: [{type: model_graded, judge: j}]
targets:
  - {name: t1, provider: p1, model: m1}
  - {name: t2, provider: p1, model: m2}
  - {name: t3, provider: p1, model: m3}
judges:
  - {name: j, provider: p1, model: judge}
providers:
  p1: {kind: openai, base_url: "http://127.0.0.1:1/v1", api_key_env: SOME_KEY}
"""


@pytest.fixture
def suite(tmp_path):
    return load_suite(write_suite(tmp_path, SUITE))


def test_selected_targets_keep_the_suites_order_judges_and_version(suite):
    chosen = select_targets(suite, ["t3", "t1"])
    assert [t.name for t in chosen.spec.targets] == ["t1", "t3"]
    assert [t.name for t in chosen.spec.judges] == ["j"]
    assert chosen.version == suite.version and chosen.dataset == suite.dataset


def test_no_names_selects_every_target(suite):
    assert select_targets(suite, []) is suite


def test_an_unknown_target_names_the_option_and_the_suites_targets(suite):
    with pytest.raises(SpecError) as exc:
        select_targets(suite, ["t1", "nope"])
    assert exc.value.field == "--target"
    assert "unknown target 'nope' (suite has: t1, t2, t3)" in str(exc.value)


def test_a_judge_is_not_a_target_to_select(suite):
    with pytest.raises(SpecError, match="unknown target 'j'"):
        select_targets(suite, ["j"])


def test_check_target_names_gives_the_index_of_the_first_unknown_name(suite):
    check_target_names(suite.spec, ["t2", "t1"])
    with pytest.raises(SpecError) as exc:
        check_target_names(suite.spec, ["t2", "x", "y"])
    assert exc.value.field == "targets[1]"
