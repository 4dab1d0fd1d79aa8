"""Stores for the tests: a temp folder, and a real S3 endpoint (moto's server over HTTP)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
from moto.server import ThreadedMotoServer

from evalcluster.store.fs import Store, open_store
from tests.result_rows import result_row as result_row  # the store's tests import it here

# moto accepts any credentials; these stand for real secrets the code must never print.
ACCESS_KEY = "AKIAEVALTESTKEY00001"
SECRET_KEY = "evalcluster-test-secret-do-not-print"
CREDENTIALS = {"key": ACCESS_KEY, "secret": SECRET_KEY}


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    bucket: str

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        )


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = S3Endpoint(f"http://{host}:{port}", "evalcluster-test")
        endpoint.client().create_bucket(Bucket=endpoint.bucket)
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def s3_store(s3_endpoint: S3Endpoint) -> Store:
    """A fresh prefix in the moto bucket, reached through an explicit endpoint."""
    uri = f"s3://{s3_endpoint.bucket}/t-{uuid.uuid4().hex[:12]}"
    return open_store(uri, endpoint_url=s3_endpoint.url, storage_options=dict(CREDENTIALS))


@pytest.fixture
def local_store(tmp_path) -> Store:
    return open_store(str(tmp_path / "evalstore"))


@pytest.fixture(params=["local", "s3"])
def store(request) -> Store:
    """Each test using it runs once on a local folder and once on S3."""
    return request.getfixturevalue(f"{request.param}_store")


SCORERS = ("exact", "numeric")
