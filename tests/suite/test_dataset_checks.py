"""Load-time dataset checks: duplicate ids, encoding and parse errors, long lines, and provider
kinds added with `register_provider`. None of these start Ray."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evalcluster.errors import SpecError
from evalcluster.providers import registry
from evalcluster.providers.openai import OpenAIAdapter
from evalcluster.suite import ProviderConfig, datasets, load_suite, load_suite_text
from evalcluster.suite.datasets import DatasetRef, iter_batches

SUITE = """
name: demo
dataset: {{path: {path}, id: id, input: question, target: answer}}
prompt: "What is {{question}}?"
scorers: [{{type: exact}}]
targets:
  - {{name: t1, provider: p1, model: m1}}
providers:
  p1: {{kind: {kind}, base_url: "http://127.0.0.1:1/v1"}}
"""


def rows(ids: list[object]) -> list[dict[str, object]]:
    return [{"id": i, "question": f"q{n}", "answer": str(n)} for n, i in enumerate(ids)]


def write(tmp_path: Path, data: bytes | list[dict], name: str = "data.jsonl", kind="openai"):
    if isinstance(data, list):
        data = "".join(json.dumps(r) + "\n" for r in data).encode()
    (tmp_path / name).write_bytes(data)
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE.format(path=name, kind=kind))
    return suite


def load_error(path: Path) -> SpecError:
    with pytest.raises(SpecError) as caught:
        load_suite(path)
    return caught.value


# 1. duplicate ids


def test_duplicate_ids_are_a_load_error_naming_the_field_count_and_first(tmp_path):
    err = load_error(write(tmp_path, rows(["a", "b", "a", "c", "b", "a"])))
    assert err.field == "dataset.id"
    assert "3 duplicate ids" in err.message
    assert "'a' (rows 1 and 3)" in err.message and "'b' (rows 2 and 5)" in err.message


def test_ids_are_compared_as_the_samples_carry_them(tmp_path):
    # 1 and 1.0 are both sample id "1"; a null id and "" are both ""
    assert "'1' (rows 1 and 2)" in load_error(write(tmp_path, rows([1, 1.0, 2]))).message
    assert "rows 1 and 2" in load_error(write(tmp_path, rows([None, "", "x"]))).message
    long = "x" * 500
    err = load_error(write(tmp_path, rows([long, "y", long])))
    assert "rows 1 and 3" in err.message and long not in err.message
    load_suite(write(tmp_path, rows([long, long + "z", "y"])))  # long but distinct


def test_duplicate_ids_in_csv_and_parquet(tmp_path):
    csv = b"id,question,answer\n1,a,1\n2,b,2\n1,c,3\n"
    assert load_error(write(tmp_path, csv, "data.csv")).field == "dataset.id"
    pq.write_table(pa.Table.from_pylist(rows([7, 8, 8])), tmp_path / "data.parquet")
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE.format(path="data.parquet", kind="openai"))
    err = load_error(suite)
    assert err.field == "dataset.id" and "'8' (rows 2 and 3)" in err.message


def test_unique_ids_load_and_no_id_column_means_row_numbers(tmp_path):
    assert load_suite(write(tmp_path, rows(["a", "b", "c"]))).columns[0] == "id"
    suite = write(tmp_path, rows(["a", "a"]))
    suite.write_text(suite.read_text().replace("id: id, ", ""))
    load_suite(suite)


def test_duplicate_ids_with_a_label_quote_no_value(tmp_path):
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(["s3cr3t"] * 2)))
    scan = datasets.scan_dataset(DatasetRef(str(tmp_path / "d.jsonl"), "jsonl"), id_column="id")
    assert scan.duplicate_ids is not None
    message = scan.duplicate_ids.message(DatasetRef("x", "jsonl", label="upload"))
    assert "s3cr3t" not in message and "row 2 repeats row 1" in message


# 2. encoding, parse errors, long lines


def test_invalid_utf8_anywhere_is_a_load_error_with_offset_and_line(tmp_path):
    good = "".join(json.dumps(r) + "\n" for r in rows([f"s{i}" for i in range(3)])).encode()
    bad = good + b'{"id": "x", "question": "caf\xe9", "answer": "1"}\n'
    err = load_error(write(tmp_path, bad))
    assert err.field == "dataset" and "not valid UTF-8" in err.message
    assert f"byte {len(good) + 28}" in err.message and "line 4" in err.message
    err = load_error(write(tmp_path, b"id,question,answer\n1,caf\xe9,1\n", "data.csv"))
    assert "not valid UTF-8" in err.message and "line 2" in err.message


def test_a_character_cut_at_the_end_is_invalid_utf8(tmp_path):
    err = load_error(write(tmp_path, b'{"id": "a", "question": "q", "answer": "1"}\n\xe2\x82'))
    assert "not valid UTF-8" in err.message and "line 2" in err.message


def test_a_bad_line_after_the_first_block_is_a_load_error_with_its_line(tmp_path):
    many = rows([f"s{i}" for i in range(100_000)])  # several 4 MiB blocks
    text = "".join(json.dumps(r) + "\n" for r in many) + '{"id": "z", "question": }\n'
    err = load_error(write(tmp_path, text.encode()))
    assert err.field == "dataset"
    assert "line 100001 is not valid JSON" in err.message


def test_parse_errors_with_a_label_quote_nothing(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": SECRET}\n')
    with pytest.raises(SpecError) as caught:
        datasets.scan_dataset(DatasetRef(str(path), "jsonl", label="the upload"))
    assert "SECRET" not in str(caught.value) and "line 2" in str(caught.value)
    path.write_bytes(b'{"id": "a"}\n{"id": "\xffSECRET"}\n')
    with pytest.raises(SpecError) as caught:
        datasets.scan_dataset(DatasetRef(str(path), "jsonl", label="the upload"))
    assert "SECRET" not in str(caught.value) and "byte 20 (line 2)" in str(caught.value)


def test_a_line_longer_than_the_read_block_loads_and_reads(tmp_path):
    huge = {"id": "big", "question": "x" * (9 << 20), "answer": "1"}
    data = [*rows(["a", "b"]), huge, *rows(["c"])]
    suite = load_suite(write(tmp_path, data))
    assert suite.dataset.block_size is not None and suite.dataset.block_size > 9 << 20
    got = [r["id"] for b in iter_batches(suite.dataset, 2) for r in b.to_pylist()]
    assert got == ["a", "b", "big", "c"]
    # a reference without the scan's block size grows it on the reader's error
    plain = DatasetRef(suite.dataset.uri, "jsonl")
    got = [r["id"] for b in iter_batches(plain, 1) for r in b.to_pylist()]
    assert got == ["a", "b", "big", "c"]


# 3. provider kinds added with register_provider


@pytest.fixture
def mine_kind():
    @registry.register_provider("mine")
    class Mine(OpenAIAdapter):
        kind = "mine"

    yield Mine
    registry.unregister_provider("mine")  # the kind must not outlive the test


def test_a_registered_kind_validates_in_a_suite(tmp_path, mine_kind):
    suite = load_suite(write(tmp_path, rows(["a"]), kind="mine"))
    assert suite.spec.providers["p1"].kind == "mine"
    assert registry.adapter_class("mine") is mine_kind


def test_an_unregistered_kind_is_refused_again(tmp_path, mine_kind):
    registry.unregister_provider("mine")
    err = load_error(write(tmp_path, rows(["a"]), kind="mine"))
    assert "unknown provider kind 'mine'" in err.message
    assert "mine" not in registry.known_kinds()


def test_unknown_kind_says_did_you_mean(tmp_path):
    err = load_error(write(tmp_path, rows(["a"]), kind="opnai"))
    assert err.field == "providers.p1.kind"
    assert "did you mean 'openai'?" in err.message
    with pytest.raises(ValueError, match="did you mean 'simulated'"):
        ProviderConfig.model_validate({"kind": "simulatd"})


def test_every_registry_kind_and_simulated_validate():
    for kind in [*registry.known_kinds(), "simulated"]:
        extra = {"custom": {"url": "http://x", "text_path": "a"}} if kind == "custom" else {}
        ProviderConfig.model_validate({"kind": kind, "base_url": "http://x", **extra})


def test_text_loading_keeps_working_with_a_label_resolver(tmp_path):
    from evalcluster.suite.rules import SubmissionRules

    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(["a", "a"])))

    class Resolver:
        def resolve(self, path: str, declared_format: str | None) -> DatasetRef:
            return DatasetRef(str(tmp_path / "d.jsonl"), "jsonl", label=path, endpoint_url=None)

    text = SUITE.format(path="mydata", kind="simulated").replace(
        ', base_url: "http://127.0.0.1:1/v1"', ""
    )
    with pytest.raises(SpecError) as caught:
        load_suite_text(
            text, location="http", base_dir=tmp_path, rules=SubmissionRules(datasets=Resolver())
        )
    assert caught.value.field == "dataset.id" and "row 2 repeats row 1" in caught.value.message


def test_jsonl_is_read_a_block_at_a_time_not_the_whole_file():
    """pyarrow's streaming JSON reader held about the whole file while reading; the reader
    must have read no more than a block past the rows it has handed out."""

    class Counting(io.BytesIO):
        taken = 0

        def read(self, size: int = -1) -> bytes:
            data = super().read(size)
            Counting.taken += len(data)
            return data

    line = (json.dumps({"id": "s", "question": "q" * 80, "answer": "1"}) + "\n").encode()
    stream = Counting(line * 50_000)  # ~5 MiB, fifty 100 KiB blocks
    block = 100 << 10
    handed_out = 0
    for batch in datasets._jsonl_batches(stream, block):
        handed_out += batch.num_rows * len(line)
        assert Counting.taken <= handed_out + 2 * block
    assert handed_out == 50_000 * len(line)


def test_jsonl_rows_that_change_their_columns_are_refused_past_the_first_block(tmp_path):
    head = "".join(json.dumps(r) + "\n" for r in rows([f"s{i}" for i in range(100_000)]))
    for extra in [
        '{"id": "z", "question": "q", "answer": "1", "other": 2}\n',
        '{"id": 7, "question": "q", "answer": "1"}\n',
    ]:
        err = load_error(write(tmp_path, (head + extra).encode()))
        assert err.field == "dataset" and (
            "unexpected field" in err.message or "changed" in err.message
        )
