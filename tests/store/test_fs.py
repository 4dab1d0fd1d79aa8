from __future__ import annotations

import os
import pickle
import threading

import botocore.exceptions
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evalcluster.errors import NotFoundError, StoreError
from evalcluster.store.fs import LocalStore, S3Store, Store, open_store

from .conftest import ACCESS_KEY, CREDENTIALS, SECRET_KEY


def test_put_if_absent_creates_once_and_keeps_the_first_content(store: Store):
    assert store.put_if_absent("a/b/x.bin", b"first") is True
    assert store.put_if_absent("a/b/x.bin", b"second") is False
    assert store.get("a/b/x.bin") == b"first"
    assert store.exists("a/b/x.bin")


def test_concurrent_put_if_absent_has_exactly_one_winner(store: Store):
    barrier = threading.Barrier(12)
    results: dict[int, bool] = {}

    def attempt(i: int) -> None:
        barrier.wait()
        results[i] = store.put_if_absent("race/obj", f"writer-{i}".encode())

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, created in results.items() if created]
    assert len(results) == 12
    assert len(winners) == 1
    assert store.get("race/obj") == f"writer-{winners[0]}".encode()
    assert store.list("race/") == ["race/obj"]


def test_moto_refuses_an_existing_key_under_if_none_match(s3_endpoint):
    # The S3 path of put_if_absent relies on the server, so pin that this server enforces it.
    client = s3_endpoint.client()
    client.put_object(Bucket=s3_endpoint.bucket, Key="inm/x", Body=b"1", IfNoneMatch="*")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.put_object(Bucket=s3_endpoint.bucket, Key="inm/x", Body=b"2", IfNoneMatch="*")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    body = client.get_object(Bucket=s3_endpoint.bucket, Key="inm/x")["Body"].read()
    assert body == b"1"


def test_put_replaces_content_and_leaves_no_temp_files(store: Store):
    store.put("runs/m.json", b"v1")
    store.put("runs/m.json", b"v2")
    assert store.get("runs/m.json") == b"v2"
    assert store.list("") == ["runs/m.json"]
    if isinstance(store, LocalStore):
        assert os.listdir(os.path.join(store.root, "runs")) == ["m.json"]


def test_a_failed_local_write_leaves_neither_object_nor_temp_file(local_store, monkeypatch):
    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(StoreError, match="x.bin"):
        local_store.put_if_absent("d/x.bin", b"data")
    with pytest.raises(StoreError, match="y.bin"):
        local_store.put("d/y.bin", b"data")
    monkeypatch.undo()
    assert os.listdir(os.path.join(local_store.root, "d")) == []
    assert not local_store.exists("d/x.bin")


def test_get_of_a_missing_key_raises_not_found_naming_it(store: Store):
    with pytest.raises(NotFoundError, match="nothing/here.json"):
        store.get("nothing/here.json")
    assert store.exists("nothing/here.json") is False


def test_list_gives_sorted_relative_keys_under_a_prefix(store: Store):
    for key in ["runs/run_id=b/x", "runs/run_id=a/y", "runs/run_id=a/t/z", "suites/s/1.yaml"]:
        store.put(key, b".")
    assert store.list("runs/") == ["runs/run_id=a/t/z", "runs/run_id=a/y", "runs/run_id=b/x"]
    assert store.list("runs/run_id=a") == ["runs/run_id=a/t/z", "runs/run_id=a/y"]
    assert store.list("") == [*store.list("runs/"), "suites/s/1.yaml"]
    assert store.list("nope/") == []
    assert store.list_dirs("runs/") == ["run_id=a", "run_id=b"]
    assert store.list_dirs("") == ["runs", "suites"]
    assert store.list_dirs("missing/") == []


def test_list_never_shows_temp_files(local_store: LocalStore):
    local_store.put("d/real", b"1")
    with open(os.path.join(local_store.root, "d", ".real.abc.tmp"), "wb") as f:
        f.write(b"partial")
    assert local_store.list("d/") == ["d/real"]


def test_delete_removes_and_is_idempotent(store: Store):
    store.put("runs/x/obj", b"1")
    store.delete("runs/x/obj")
    store.delete("runs/x/obj")
    assert not store.exists("runs/x/obj")
    assert store.list_dirs("runs/") == []


@pytest.mark.parametrize("key", ["", "/abs", "../up", "a/../b", "a//b", ".hidden", "a/.tmp", "a/"])
def test_invalid_keys_are_refused(local_store: Store, key: str):
    with pytest.raises(StoreError, match="invalid store key"):
        local_store.put(key, b"x")


def test_store_pickles_and_works_after_unpickling(store: Store):
    store.put("p/one", b"1")
    store.arrow_filesystem_and_path("p/one")  # builds the clients before pickling
    copy = pickle.loads(pickle.dumps(store))
    assert copy == store and copy.uri == store.uri
    assert copy.get("p/one") == b"1"
    assert copy.put_if_absent("p/two", b"2") is True
    filesystem, path = copy.arrow_filesystem_and_path("p/two")
    with filesystem.open_input_stream(path) as f:
        assert f.read() == b"2"


def test_arrow_filesystem_reads_what_the_store_wrote(store: Store):
    table = pa.table({"x": [1, 2, 3]})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    store.put("t/x.parquet", sink.getvalue().to_pybytes())
    filesystem, path = store.arrow_filesystem_and_path("t/x.parquet")
    assert pq.read_table(path, filesystem=filesystem).equals(table)
    assert store.full_uri("t/x.parquet").endswith("/t/x.parquet")


def test_s3_errors_name_the_object_and_never_the_credentials(s3_endpoint):
    store = open_store(
        "s3://no-such-bucket-here/p", endpoint_url=s3_endpoint.url, storage_options=CREDENTIALS
    )
    for call in (lambda: store.put("k/obj", b"1"), lambda: store.put_if_absent("k/obj", b"1")):
        with pytest.raises(StoreError) as info:
            call()
        message = str(info.value)
        assert "s3://no-such-bucket-here/p/k/obj" in message
        assert "NoSuchBucket" in message
        assert SECRET_KEY not in message and ACCESS_KEY not in message
    assert SECRET_KEY not in repr(store) and SECRET_KEY not in repr(store.options)


def test_s3_endpoint_comes_from_aws_endpoint_url_variables(s3_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint.url)
    store = open_store(f"s3://{s3_endpoint.bucket}/env-test", storage_options=CREDENTIALS)
    assert isinstance(store, S3Store) and store.options.endpoint_url == s3_endpoint.url
    store.put("k", b"via env")
    assert store.get("k") == b"via env"
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    fallback = open_store(f"s3://{s3_endpoint.bucket}/env-test", storage_options=CREDENTIALS)
    assert fallback.options.endpoint_url == "http://127.0.0.1:1"
    explicit = open_store(
        f"s3://{s3_endpoint.bucket}/env-test",
        endpoint_url=s3_endpoint.url,
        storage_options=CREDENTIALS,
    )
    assert explicit.get("k") == b"via env"


def test_open_store_understands_paths_file_uris_and_s3(tmp_path):
    assert open_store(str(tmp_path)) == LocalStore(str(tmp_path))
    assert open_store(f"file://{tmp_path}") == LocalStore(str(tmp_path))
    s3 = open_store("s3://bucket-x/a/b/", storage_options={"key": "k", "secret": "s"})
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix, s3.uri) == ("bucket-x", "a/b", "s3://bucket-x/a/b")
    assert s3.full_uri("runs/x") == "s3://bucket-x/a/b/runs/x"
    with pytest.raises(StoreError, match="unsupported store URI"):
        open_store("gs://bucket/x")
    with pytest.raises(StoreError, match="unknown S3 storage option 'secret_key'"):
        open_store("s3://bucket-x", storage_options={"secret_key": "s"})
