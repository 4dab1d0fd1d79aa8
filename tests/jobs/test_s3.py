"""A run whose dataset and store are on S3 (moto's server over real HTTP)."""

from __future__ import annotations

import os

import boto3
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
import ray
import yaml
from moto.server import ThreadedMotoServer

from evalcluster.jobs.driver import run_suite
from evalcluster.jobs.options import RunOptions
from evalcluster.jobs.prepare import prepare_suite
from evalcluster.simulator import SimulatorConfig, SimulatorThread
from tests.conftest import openai_provider, write_dataset, write_suite

BUCKET = "evalcluster-runs"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIAEVALRUNTEST00001",
    "AWS_SECRET_ACCESS_KEY": "evalcluster-run-secret-do-not-print",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def s3():
    """moto's S3 server, with credentials and endpoint in the environment of Ray's workers."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        **CREDENTIALS,
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "EVALCLUSTER_TEST_KEY": "sk-test-not-a-real-key-0123456789",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        num_cpus=2,
        namespace="evalcluster",
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": env},
    )
    try:
        yield env["AWS_ENDPOINT_URL"]
    finally:
        ray.shutdown()
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_run_with_s3_dataset_and_store_reads_back_with_pyarrow_s3(tmp_path, s3):
    data = write_dataset(tmp_path / "data.jsonl", 24)
    boto3.client("s3").upload_file(str(data), BUCKET, "datasets/data.jsonl")
    with SimulatorThread(SimulatorConfig()) as sim:
        path = write_suite(
            tmp_path,
            samples=24,
            providers={"p": openai_provider(sim.url)},
            targets=[{"name": "a", "provider": "p", "model": "m", "params": {"temperature": 0}}],
        )
        suite = yaml.safe_load(path.read_text())
        suite["dataset"]["path"] = f"s3://{BUCKET}/datasets/data.jsonl"
        path.write_text(yaml.safe_dump(suite))
        result = run_suite(
            prepare_suite(path),
            RunOptions(
                store=f"s3://{BUCKET}/lake", endpoint_url=s3, tracking_uri=None, run_id="s3run"
            ),
        )
    assert result.status == "finished", result.message
    host_port = s3.removeprefix("http://")
    s3fs = pafs.S3FileSystem(
        endpoint_override=host_port,
        scheme="http",
        access_key=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        secret_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region="us-east-1",
    )
    table = ds.dataset(
        f"{BUCKET}/lake/runs", filesystem=s3fs, format="parquet", partitioning="hive"
    ).to_table()
    assert table.num_rows == 24
    assert set(table["run_id"].to_pylist()) == {"s3run"}
    assert set(table["score_numeric"].to_pylist()) == {1.0}
    keys = {
        o["Key"]
        for o in boto3.client("s3").list_objects_v2(
            Bucket=BUCKET, Prefix="lake/runs/run_id=s3run/"
        )["Contents"]
    }
    assert "lake/runs/run_id=s3run/_manifest.json" in keys
    assert "lake/runs/run_id=s3run/_summary.json" in keys
