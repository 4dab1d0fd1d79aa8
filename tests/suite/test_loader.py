import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evalcluster.errors import SpecError
from evalcluster.suite import load_suite

SUITE = """
name: demo
dataset: {path: data.jsonl, id: id, input: question, target: answer}
prompt: "What is {question}?"
scorers: [{type: numeric}]
targets:
  - {name: t1, provider: p1, model: m1, params: {temperature: 0, max_tokens: 8}}
providers:
  p1: {kind: openai, base_url: "http://127.0.0.1:1/v1", api_key_env: SOME_KEY}
"""

ROWS = [{"id": f"s{i}", "question": f"{i} + 1", "answer": str(i + 1)} for i in range(5)]


def write_suite(tmp_path: Path, text: str = SUITE, rows=ROWS, name="data.jsonl") -> Path:
    (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def test_valid_suite_loads_with_columns_and_version(tmp_path):
    suite = load_suite(write_suite(tmp_path))
    assert suite.spec.name == "demo"
    assert suite.columns == ("id", "question", "answer")
    assert len(suite.version) == 16


def test_version_is_stable_for_same_inputs_and_changes_with_dataset_content(tmp_path):
    first = load_suite(write_suite(tmp_path)).version
    assert load_suite(write_suite(tmp_path)).version == first
    changed = [*ROWS[:-1], {"id": "s4", "question": "4 + 1", "answer": "6"}]
    assert load_suite(write_suite(tmp_path, rows=changed)).version != first


def test_version_changes_with_the_prompt_but_not_with_the_dataset_location(tmp_path):
    first = load_suite(write_suite(tmp_path)).version
    other = tmp_path / "elsewhere"
    other.mkdir()
    moved = load_suite(write_suite(other, SUITE)).version
    assert moved == first
    assert load_suite(write_suite(tmp_path, SUITE.replace("What is", "Compute"))).version != first


def test_missing_dataset_names_field_and_file(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.replace("data.jsonl", "nope.jsonl"))
    with pytest.raises(SpecError) as err:
        load_suite(path)
    assert str(err.value) == f"{path}: dataset.path: file not found: nope.jsonl"


def test_template_variable_not_in_data_is_named(tmp_path):
    path = write_suite(tmp_path, SUITE.replace("{question}", "{questoin}"))
    with pytest.raises(
        SpecError, match=r"prompt: template variable \{questoin\} is not a dataset column"
    ):
        load_suite(path)


def test_bad_yaml_reports_line(tmp_path):
    path = write_suite(tmp_path, SUITE + "\n  bad: [unclosed\n")
    with pytest.raises(SpecError, match=r"invalid YAML: line \d+"):
        load_suite(path)


def test_unknown_field_and_unknown_provider_are_named(tmp_path):
    with pytest.raises(SpecError, match=r"epochz: unknown field"):
        load_suite(write_suite(tmp_path, SUITE + "epochz: 2\n"))
    with pytest.raises(SpecError, match=r"targets\[0\]\.provider: unknown provider 'p2'"):
        load_suite(write_suite(tmp_path, SUITE.replace("provider: p1", "provider: p2")))


def test_inline_api_key_is_rejected_as_unknown_field(tmp_path):
    text = SUITE.replace("api_key_env: SOME_KEY", "api_key: sk-secret-value")
    with pytest.raises(SpecError) as err:
        load_suite(write_suite(tmp_path, text))
    assert "api_key" in str(err.value) and "sk-secret-value" not in str(err.value)


def test_csv_and_parquet_datasets_load_like_jsonl(tmp_path):
    jsonl = load_suite(write_suite(tmp_path))
    csv_path = tmp_path / "data.csv"
    csv_path.write_text(
        "id,question,answer\n" + "".join(f"{r['id']},{r['question']},{r['answer']}\n" for r in ROWS)
    )
    assert (
        load_suite(write_suite(tmp_path, SUITE.replace("data.jsonl", "data.csv"))).columns
        == jsonl.columns
    )
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "data.parquet")
    suite = load_suite(write_suite(tmp_path, SUITE.replace("data.jsonl", "data.parquet")))
    assert suite.dataset.format == "parquet"


def test_providers_file_is_merged_and_suite_entries_win(tmp_path):
    (tmp_path / "providers.yaml").write_text(
        "providers:\n  p2: {kind: local, base_url: 'http://127.0.0.1:2/v1'}\n"
        "  p1: {kind: local, base_url: 'http://127.0.0.1:3/v1'}\n"
    )
    text = SUITE.replace("provider: p1", "provider: p2") + "providers_file: providers.yaml\n"
    suite = load_suite(write_suite(tmp_path, text))
    assert suite.spec.providers["p2"].kind == "local"
    assert suite.spec.providers["p1"].kind == "openai"


def test_example_suite_is_valid():
    suite = load_suite(Path(__file__).parents[2] / "examples" / "arithmetic.yaml")
    assert {t.name for t in suite.spec.targets} == {"sim-strong", "sim-weak"}
