"""The suite's `compare:` section is validated at load, each error naming its field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalcluster.errors import SpecError
from evalcluster.suite import load_suite

SUITE = """
name: versus
dataset: {path: data.jsonl, id: id, input: question, target: answer}
prompt: "What is {question}?"
scorers: [{type: numeric}, {type: exact, name: strict}]
targets:
  - {name: old, provider: p1, model: m1}
  - {name: new, provider: p1, model: m2}
providers:
  p1: {kind: simulated, simulator: {accuracy: 0.7, correlation: 0.5}}
compare: COMPARE
"""


def load_with(tmp_path: Path, compare: str):
    rows = [{"id": f"s{i}", "question": f"{i} + 1", "answer": str(i + 1)} for i in range(5)]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.replace("COMPARE", compare))
    return load_suite(path)


def test_a_valid_compare_section_loads_with_its_defaults(tmp_path):
    spec = load_with(tmp_path, "{a: old, b: new}").spec.compare
    assert (spec.a, spec.b, spec.margin, spec.alpha, spec.max_samples, spec.scorer) == (
        "old",
        "new",
        0.0,
        0.05,
        20_000,
        None,
    )
    spec = load_with(tmp_path, "{a: old, b: new, margin: 0.01, scorer: strict}").spec.compare
    assert (spec.margin, spec.scorer) == (0.01, "strict")


@pytest.mark.parametrize(
    ("compare", "field", "message"),
    [
        ("{a: nobody, b: new}", "compare.a", "unknown target 'nobody'"),
        ("{a: old, b: nobody}", "compare.b", "unknown target 'nobody'"),
        ("{a: old, b: old}", "compare.b", "two different targets"),
        ("{a: old, b: new, margin: -0.01}", "compare.margin", "greater than or equal to 0"),
        ("{a: old, b: new, alpha: 0}", "compare.alpha", "greater than 0"),
        ("{a: old, b: new, alpha: 1}", "compare.alpha", "less than 1"),
        ("{a: old, b: new, max_samples: 0}", "compare.max_samples", "greater than or equal"),
        ("{a: old, b: new, scorer: nope}", "compare.scorer", "unknown scorer 'nope'"),
        ("{a: old, b: new, margins: 0.1}", "compare.margins", "unknown field"),
        ("{b: new}", "compare.a", "required"),
    ],
)
def test_bad_compare_sections_name_the_field(tmp_path, compare, field, message):
    with pytest.raises(SpecError) as err:
        load_with(tmp_path, compare)
    assert err.value.field == field
    assert message in err.value.message


def test_simulator_difficulty_settings_are_validated(tmp_path):
    rows = [{"id": "s0", "question": "1 + 1", "answer": "2"}]
    (tmp_path / "data.jsonl").write_text(json.dumps(rows[0]) + "\n")
    path = tmp_path / "suite.yaml"
    text = SUITE.replace("compare: COMPARE", "").replace("correlation: 0.5", "correlation: 1.5")
    path.write_text(text)
    with pytest.raises(SpecError) as err:
        load_suite(path)
    assert err.value.field == "providers.p1.simulator.correlation"


def test_a_bad_cluster_pattern_is_refused_at_load(tmp_path):
    rows = [{"id": "s0", "question": "1 + 1", "answer": "2"}]
    (tmp_path / "data.jsonl").write_text(json.dumps(rows[0]) + "\n")
    path = tmp_path / "suite.yaml"
    bad = "correlation: 0.5, cluster_pattern: '(unclosed'"
    path.write_text(SUITE.replace("compare: COMPARE", "").replace("correlation: 0.5", bad))
    with pytest.raises(SpecError) as err:
        load_suite(path)
    assert err.value.field == "providers.p1.simulator.cluster_pattern"
    assert "not a regular expression" in err.value.message
