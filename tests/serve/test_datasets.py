"""The confined dataset resolver and the upload helpers, without a cluster."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from evalcluster.errors import SpecError
from evalcluster.serve.auth import Principal
from evalcluster.serve.config import Quotas
from evalcluster.serve.datasets import TenantDatasets, data_key, list_records, read_record
from evalcluster.serve.errors import ApiError
from evalcluster.serve.routes_datasets import (
    Upload,
    delete_dataset_record,
    parse_upload,
    store_upload,
)
from evalcluster.store.fs import LocalStore

SECRET = "root:x:0:0:secret-line"


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "ok.csv").write_text("a,b\n1,2\n")
    (root / "sub" / "deep.csv").write_text("a,b\n1,2\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text(SECRET + "\n")
    (root / "link.csv").symlink_to(outside / "secret.csv")
    (root / "linkdir").symlink_to(outside)
    (root / "loop.csv").symlink_to(root / "loop.csv")
    (tmp_path / "root-link").symlink_to(root)
    return {"root": root, "outside": outside, "tmp": tmp_path}


def resolver(store_dir: Path, *roots: str, tenant: str = "alpha") -> TenantDatasets:
    return TenantDatasets(LocalStore(str(store_dir)), tenant, tuple(roots))


def refused(datasets: TenantDatasets, path: str, fmt: str | None = "csv") -> SpecError:
    with pytest.raises(SpecError) as caught:
        datasets.resolve(path, fmt)
    assert "no such dataset" in caught.value.one_line()
    return caught.value


def test_files_under_a_root_resolve(layout):
    datasets = resolver(layout["tmp"] / "store", str(layout["root"]))
    assert datasets.resolve("ok.csv", None).uri == str(layout["root"] / "ok.csv")
    assert datasets.resolve("sub/../sub/deep.csv", None).format == "csv"
    assert datasets.resolve(str(layout["root"] / "ok.csv"), "csv").label.endswith("ok.csv")


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "../outside/secret.csv",
        "../../../../etc/passwd",
        "link.csv",
        "linkdir/secret.csv",
        "loop.csv",
        "sub",
        "file:///etc/passwd",
        "FILE:///etc/passwd",
        "http://example.com/x.csv",
        "ok.csv\x00.txt",
        "",
        "x" * 5000 + ".csv",
        "dataset:../x",
        "dataset:",
    ],
)
def test_paths_outside_the_roots_are_no_such_dataset(layout, path):
    datasets = resolver(layout["tmp"] / "store", str(layout["root"]))
    error = refused(datasets, path)
    assert SECRET not in error.one_line()
    assert str(layout["root"]) not in error.one_line()


def test_an_absolute_path_outside_is_refused_even_without_a_format(layout):
    datasets = resolver(layout["tmp"] / "store", str(layout["root"]))
    refused(datasets, str(layout["outside"] / "secret.csv"), None)
    refused(datasets, "/etc/passwd", None)  # located first: same answer, no format question


def test_a_root_given_as_a_symlink_or_relative_still_confines(layout, monkeypatch):
    datasets = resolver(layout["tmp"] / "store", str(layout["tmp"] / "root-link"))
    assert datasets.resolve("ok.csv", None).uri == str(layout["root"] / "ok.csv")
    refused(datasets, "link.csv")
    refused(datasets, "../outside/secret.csv")
    monkeypatch.chdir(layout["tmp"])
    relative = resolver(layout["tmp"] / "store", "root")
    assert relative.resolve("ok.csv", None).uri == str(layout["root"] / "ok.csv")
    refused(relative, "link.csv")


def test_the_store_is_never_a_dataset_even_under_a_root(layout):
    store_dir = layout["root"] / "store"
    upload = store_dir / "tenants" / "beta" / "datasets" / "data" / "abc.csv"
    upload.parent.mkdir(parents=True)
    upload.write_text("a,b\n1,2\n")
    datasets = resolver(store_dir, str(layout["root"]))
    refused(datasets, "store/tenants/beta/datasets/data/abc.csv")
    refused(datasets, str(upload))
    assert datasets.resolve("ok.csv", None).format == "csv"


def test_s3_paths_must_lie_under_an_s3_root(layout):
    datasets = resolver(layout["tmp"] / "store", "s3://bucket/data")  # no trailing slash
    assert datasets.resolve("s3://bucket/data/x.csv", None).uri == "s3://bucket/data/x.csv"
    for path in (
        "s3://other-bucket/x.csv",
        "s3://bucket/data-private/x.csv",
        "s3://bucket/data/../secret/x.csv",
        "s3://bucket/data//x.csv",
        "s3://bucket/data/%2e%2e/x.csv",
        "s3://bucket/data\\..\\x.csv",
    ):
        refused(datasets, path)


def test_an_s3_store_under_an_s3_root_is_refused(tmp_path):
    class S3Like(LocalStore):
        def full_uri(self, key: str = "") -> str:
            return "s3://bucket/lake" + (f"/{key}" if key else "")

    datasets = TenantDatasets(S3Like(str(tmp_path)), "alpha", ("s3://bucket/",))
    refused(datasets, "s3://bucket/lake/tenants/beta/datasets/data/abc.csv")
    assert datasets.resolve("s3://bucket/lakes.csv", None).format == "csv"


# -- uploads, in the store -------------------------------------------------------------------


def principal(tenant: str = "alpha", max_datasets: int = 100) -> Principal:
    return Principal(tenant, "runner", Quotas(max_datasets=max_datasets), "k1")


def upload_of(tmp_path: Path, data: bytes, name: str = "u") -> Upload:
    path = tmp_path / f"{name}.bin"
    path.write_bytes(data)
    return Upload(str(path), len(data), hashlib.sha256(data))


def test_uploads_resolve_in_their_tenant_only(tmp_path):
    store = LocalStore(str(tmp_path / "store"))
    data = b"a,b\n1,2\n"
    found, replaced = store_upload(store, principal(), "mine", "csv", upload_of(tmp_path, data))
    assert replaced is False
    assert found.sha256 == hashlib.sha256(data).hexdigest()
    assert store.get(data_key("alpha", found.sha256, "csv")) == data
    mine = TenantDatasets(store, "alpha", ())
    assert mine.resolve("dataset:mine", None).format == "csv"
    with pytest.raises(SpecError, match="uploaded as csv"):
        mine.resolve("dataset:mine", "jsonl")
    refused(TenantDatasets(store, "beta", ()), "dataset:mine")


def test_replacing_and_deleting_keep_bytes_another_name_uses(tmp_path):
    store = LocalStore(str(tmp_path / "store"))
    first, second = b"a\n1\n", b"a\n2\n"
    one, _ = store_upload(store, principal(), "one", "csv", upload_of(tmp_path, first, "1"))
    store_upload(store, principal(), "two", "csv", upload_of(tmp_path, first, "2"))
    _, replaced = store_upload(store, principal(), "one", "csv", upload_of(tmp_path, second))
    assert replaced is True
    assert store.exists(data_key("alpha", one.sha256, "csv"))  # "two" still points at it
    assert read_record(store, "alpha", "one").sha256 == hashlib.sha256(second).hexdigest()
    delete_dataset_record(store, "alpha", "two")
    assert not store.exists(data_key("alpha", one.sha256, "csv"))
    assert [r.name for r in list_records(store, "alpha")] == ["one"]
    with pytest.raises(ApiError) as caught:
        delete_dataset_record(store, "alpha", "two")
    assert caught.value.status == 404


def test_the_quota_counts_names(tmp_path):
    store = LocalStore(str(tmp_path / "store"))
    who = principal(max_datasets=1)
    store_upload(store, who, "one", "csv", upload_of(tmp_path, b"a\n1\n"))
    store_upload(store, who, "one", "csv", upload_of(tmp_path, b"a\n2\n"))  # a replacement
    with pytest.raises(ApiError) as caught:
        store_upload(store, who, "two", "csv", upload_of(tmp_path, b"a\n3\n"))
    assert caught.value.status == 429


@pytest.mark.parametrize(
    ("data", "fmt", "says"),
    [
        (b"a,b\n1,2\n3,4,root:x:0:0\n", "csv", "expected 2 columns, got 3"),
        (b"a,b\n\xff\xferoot:x:0:0,1\n", "csv", "not valid UTF-8 csv (at byte 4)"),
        (b'{"a": 1}\n{"a": root:x:0:0\n', "jsonl", "not valid jsonl"),
        (b'{"a": 1}\n{"a": "root:x:0:0"}\n', "jsonl", "not valid jsonl"),
        (b"a,b\n", "csv", "no rows"),
        (b"a,a\n1,2\n", "csv", "same name"),
        (b"PAR1root:x:0:0", "parquet", "not valid parquet"),
    ],
)
def test_invalid_uploads_say_why_without_quoting_them(tmp_path, data, fmt, says):
    path = tmp_path / "upload"
    path.write_bytes(data)
    with pytest.raises(ApiError) as caught:
        parse_upload(str(path), fmt)
    assert caught.value.status == 422
    assert says in caught.value.detail
    assert "root:x" not in caught.value.detail
    assert str(tmp_path) not in caught.value.detail
