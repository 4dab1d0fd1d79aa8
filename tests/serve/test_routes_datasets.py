"""/v1/datasets over real HTTP: uploads, suites and runs over them, tenants, confinement."""

from __future__ import annotations

import io
import json
import re
import socket
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .conftest import suite_document
from .test_routes_runs import wait_for_end

SECRET = "root:x:0:0:secret-line-of-a-server-file"
ROWS = [{"id": f"q{i}", "question": f"{i} + 1", "answer": str(i + 1)} for i in range(6)]


def jsonl_bytes(rows: list[dict] = ROWS) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def csv_bytes(rows: list[dict] = ROWS) -> bytes:
    lines = ["id,question,answer"] + [f"{r['id']},{r['question']},{r['answer']}" for r in rows]
    return ("\n".join(lines) + "\n").encode()


def parquet_bytes(rows: list[dict] = ROWS) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    return sink.getvalue()


MAKERS = {"jsonl": jsonl_bytes, "csv": csv_bytes, "parquet": parquet_bytes}


def upload(api, name: str, data: bytes, fmt: str | None = None, **headers: str):
    params = {"name": name} | ({"format": fmt} if fmt else {})
    headers = {"Content-Type": "application/octet-stream", **headers}
    return api.post("/v1/datasets", params=params, content=data, headers=headers)


def dataset_suite(service, name: str, path: str, fmt: str | None = None) -> dict:
    document = suite_document(service.work, name, samples=3, targets=1, shard_size=3)
    document["dataset"]["path"] = path
    if fmt:
        document["dataset"]["format"] = fmt
    return document


@pytest.fixture
def other(service):
    with service.client(service.other_key) as client:
        yield client


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_an_upload_is_a_dataset_a_suite_and_a_run_can_use(service, api, fmt):
    name = f"arith-{fmt}"
    data = MAKERS[fmt]()
    created = upload(api, name, data, fmt)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["reference"] == f"dataset:{name}"
    assert body["format"] == fmt and body["bytes"] == len(data)
    assert body["columns"] == ["id", "question", "answer"] and body["rows"] == len(ROWS)
    assert re.fullmatch(r"[0-9a-f]{64}", body["sha256"])
    assert api.get(f"/v1/datasets/{name}").json()["sha256"] == body["sha256"]

    suite = api.post(
        "/v1/suites", json={"suite": dataset_suite(service, f"s-{name}", body["reference"])}
    )
    assert suite.status_code == 201, suite.text
    started = api.post("/v1/runs", json={"suite": f"s-{name}"})
    assert started.status_code == 202, started.text
    final = wait_for_end(api, started.json()["run_id"])
    assert final["status"] == "finished", final
    assert final["done"] == final["total"] == len(ROWS)


def test_the_format_comes_from_the_name_when_not_given(api):
    created = upload(api, "by-extension.csv", csv_bytes())
    assert created.status_code == 201, created.text
    assert created.json()["format"] == "csv"
    unknown = upload(api, "no-extension", csv_bytes())
    assert unknown.status_code == 422 and unknown.json()["field"] == "format"


def test_bad_names_and_multipart_forms_are_refused(api):
    assert upload(api, "../escape", csv_bytes(), "csv").status_code == 422
    assert upload(api, ".hidden", csv_bytes(), "csv").status_code == 422
    assert upload(api, "x", csv_bytes(), "xlsx").status_code == 422
    form = api.post(
        "/v1/datasets", params={"name": "form", "format": "csv"}, files={"f": csv_bytes()}
    )
    assert form.status_code == 415, form.text


def test_another_tenants_upload_is_invisible_and_unusable(service, api, other):
    assert upload(api, "private-data", jsonl_bytes(), "jsonl").status_code == 201
    assert other.get("/v1/datasets/private-data").status_code == 404
    assert other.delete("/v1/datasets/private-data").status_code == 404
    assert "private-data" not in [d["name"] for d in other.get("/v1/datasets").json()["datasets"]]
    suite = other.post(
        "/v1/suites", json={"suite": dataset_suite(service, "steal", "dataset:private-data")}
    )
    assert suite.status_code == 422, suite.text
    assert "no such dataset" in suite.json()["detail"]
    assert api.get("/v1/datasets/private-data").status_code == 200  # untouched


def test_another_tenants_upload_is_unreachable_through_the_store_path(service, api, other):
    created = upload(api, "stored-bytes", jsonl_bytes(), "jsonl").json()
    data_files = list(service.store.glob(f"tenants/*/datasets/data/{created['sha256']}.jsonl"))
    assert data_files, "the upload's bytes are in the store"
    relative = data_files[0].relative_to(service.work)  # the store lies under the dataset root
    for path in (str(relative), str(data_files[0])):
        suite = other.post("/v1/suites", json={"suite": dataset_suite(service, "steal2", path)})
        assert suite.status_code == 422, suite.text
        assert "no such dataset" in suite.json()["detail"]


def test_listing_shows_the_callers_datasets_only(api, other):
    upload(api, "listed-alpha", csv_bytes(), "csv")
    upload(other, "listed-beta", csv_bytes(), "csv")
    mine = {d["name"] for d in api.get("/v1/datasets").json()["datasets"]}
    theirs = {d["name"] for d in other.get("/v1/datasets").json()["datasets"]}
    assert "listed-alpha" in mine and "listed-beta" not in mine
    assert "listed-beta" in theirs and "listed-alpha" not in theirs
    listed = next(
        d for d in api.get("/v1/datasets").json()["datasets"] if d["name"] == "listed-alpha"
    )
    assert listed["reference"] == "dataset:listed-alpha"


def test_uploading_a_name_again_repoints_it(api):
    first = upload(api, "evolving-data", csv_bytes(ROWS[:2]), "csv").json()
    again = upload(api, "evolving-data", csv_bytes(ROWS), "csv")
    assert again.status_code == 201, again.text
    assert again.json()["replaced"] is True and first["replaced"] is False
    assert again.json()["sha256"] != first["sha256"]
    current = api.get("/v1/datasets/evolving-data").json()
    assert current["sha256"] == again.json()["sha256"]


def test_a_deleted_dataset_is_gone(service, api):
    upload(api, "short-lived", csv_bytes(), "csv")
    deleted = api.delete("/v1/datasets/short-lived")
    assert deleted.status_code == 200, deleted.text
    assert api.get("/v1/datasets/short-lived").status_code == 404
    assert api.delete("/v1/datasets/short-lived").status_code == 404
    suite = api.post(
        "/v1/suites", json={"suite": dataset_suite(service, "gone", "dataset:short-lived")}
    )
    assert suite.status_code == 422 and "no such dataset" in suite.json()["detail"]


def test_an_upload_over_the_request_body_limit_uses_the_upload_limit(service, api):
    rows = [{"id": f"r{i}", "question": "x" * 200, "answer": "1"} for i in range(500)]
    data = jsonl_bytes(rows)
    assert len(data) > service.max_body_bytes
    created = upload(api, "bigger-than-a-body", data, "jsonl")
    assert created.status_code == 201, created.text
    assert created.json()["rows"] == 500


def raw_post(url: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, str]:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: {parts.hostname}\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode() + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
            if b"\r\n\r\n" in received:
                header, _, rest = received.partition(b"\r\n\r\n")
                length = re.search(rb"content-length: (\d+)", header, re.I)
                if length and len(rest) >= int(length.group(1)):
                    break
    status = int(received.split(b" ", 2)[1])
    return status, received.partition(b"\r\n\r\n")[2].decode()


def test_an_upload_over_the_upload_limit_is_413_naming_the_limit(service):
    status, body = raw_post(
        service.url,
        "/v1/datasets?name=huge&format=csv",
        {"Authorization": f"Bearer {service.key}", "Content-Length": str(1 << 50)},
    )
    assert status == 413, body
    detail = json.loads(body)["detail"]
    limit = int(re.search(r"larger than (\d+) bytes", detail).group(1))
    assert limit != service.max_body_bytes


def test_a_chunked_upload_over_the_upload_limit_is_cut_off(service, api):
    status, body = raw_post(
        service.url,
        "/v1/datasets?name=huge&format=csv",
        {"Authorization": f"Bearer {service.key}", "Content-Length": str(1 << 50)},
    )
    limit = int(re.search(r"larger than (\d+) bytes", json.loads(body)["detail"]).group(1))
    if limit > 8 << 20:
        pytest.skip(f"the service's upload limit ({limit} bytes) is too large to send here")

    def chunks():
        sent = 0
        while sent <= limit:
            yield b"a,b\n" * 16384
            sent += 4 * 16384

    response = api.post("/v1/datasets", params={"name": "huge", "format": "csv"}, content=chunks())
    assert response.status_code == 413, response.text
    assert str(limit) in response.json()["detail"]


BAD_FILES = {
    "ragged-csv": ("csv", b"id,question,answer\nq1,1 + 1,2\nq2,root:x:0:0:ragged,3,4\n"),
    "latin1-csv": ("csv", "id,question,answer\nq1,caf\u00e9 root:x:0:0,2\n".encode("latin-1")),
    "latin1-jsonl": ("jsonl", '{"id": "caf\u00e9 root:x:0:0"}\n'.encode("latin-1")),
    "broken-jsonl": ("jsonl", b'{"id": "q1"}\n{"id": root:x:0:0 unquoted}\n'),
    "not-parquet": ("parquet", b"PAR1 root:x:0:0 not really\n"),
    "header-only": ("csv", b"id,question,answer\n"),
    "empty": ("jsonl", b""),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_an_invalid_file_is_422_without_quoting_it(api, name):
    fmt, data = BAD_FILES[name]
    response = upload(api, name, data, fmt)
    assert response.status_code == 422, response.text
    assert "root:x" not in response.text
    for line in data.splitlines():
        if len(line) > 3:
            assert line.decode("latin-1") not in response.text
    assert api.get(f"/v1/datasets/{name}").status_code == 404


@pytest.fixture(scope="module")
def outside_file(service, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "secret.csv"
    outside.write_text(f"{SECRET},b\n1,2\n")
    link = service.work / "innocent-link.csv"
    if not link.exists():
        link.symlink_to(outside)
    return outside


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "../../etc/passwd",
        "../../../../../../etc/passwd",
        "innocent-link.csv",
        "OUTSIDE",
        "file:///etc/passwd",
        "s3://other-bucket/x.csv",
        "dataset:../../etc/passwd",
    ],
)
def test_paths_outside_the_roots_are_no_such_dataset(service, api, outside_file, path):
    path = str(outside_file) if path == "OUTSIDE" else path
    response = api.post("/v1/suites", json={"suite": dataset_suite(service, "attack", path, "csv")})
    assert response.status_code == 422, response.text
    assert "no such dataset" in response.json()["detail"]
    assert response.json()["field"] == "dataset.path"
    assert "root:x:0:0" not in response.text and SECRET not in response.text
    assert str(service.work) not in response.text
