"""Application arguments: validation, defaults, absolute paths, and refusing to run keyless."""

from __future__ import annotations

import os

import pytest

from evalcluster.errors import SpecError
from evalcluster.serve.auth import KEYS_ENV, AuthResult
from evalcluster.serve.settings import (
    DEFAULT_MAX_BODY_BYTES,
    absolute_store_uri,
    absolute_tracking_uri,
    settings_from_args,
)


@pytest.fixture(autouse=True)
def _no_env_keys(monkeypatch):
    monkeypatch.delenv(KEYS_ENV, raising=False)


def test_no_keys_refuses_to_start_with_a_clear_error():
    with pytest.raises(SpecError) as err:
        settings_from_args({})
    assert err.value.field == "api_keys"
    assert KEYS_ENV in err.value.message and "allow_no_auth" in err.value.message


def test_allow_no_auth_must_be_explicit():
    settings = settings_from_args({"allow_no_auth": "true"})
    assert not settings.api_keys
    with pytest.raises(SpecError):
        settings_from_args({"allow_no_auth": "false"})
    with pytest.raises(SpecError) as err:
        settings_from_args({"allow_no_auth": "maybe"})
    assert err.value.field == "allow_no_auth"


def test_keys_from_the_environment_are_enough(monkeypatch):
    monkeypatch.setenv(KEYS_ENV, "env-key")
    settings = settings_from_args({})
    assert settings.api_keys.verify("env-key") is AuthResult.OK
    assert settings.max_body_bytes == DEFAULT_MAX_BODY_BYTES
    assert "env-key" not in repr(settings)


def test_string_arguments_from_serve_run_are_parsed(tmp_path):
    settings = settings_from_args(
        {
            "allow_no_auth": "1",
            "max_body_bytes": "2048",
            "store_uri": "rel/store",
            "tracking_uri": "none",
            "base_dir": str(tmp_path),
            "driver_linger_s": "5",
        }
    )
    assert settings.max_body_bytes == 2048
    assert settings.store_uri == os.path.abspath("rel/store")
    assert settings.tracking_uri is None
    assert settings.dataset_roots == (str(tmp_path.resolve()),)  # base_dir: a dataset root
    assert settings.driver_linger_s == 5.0


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"max_body_bytes": "0"}, "max_body_bytes"),
        ({"max_body_bytes": "ten"}, "max_body_bytes"),
        ({"driver_linger_s": "-1"}, "driver_linger_s"),
        ({"base_dir": "/no/such/dir"}, "base_dir"),
        ({"store": "typo"}, "store"),
    ],
)
def test_bad_arguments_name_themselves(args, field):
    with pytest.raises(SpecError) as err:
        settings_from_args({"allow_no_auth": True, **args})
    assert err.value.field == field


def test_store_uris_are_made_absolute_only_when_local():
    assert absolute_store_uri("s3://bucket/prefix") == "s3://bucket/prefix"
    assert absolute_store_uri("file:///tmp/x") == "/tmp/x"
    assert absolute_store_uri("./evalstore") == os.path.abspath("evalstore")


def test_tracking_uris():
    assert absolute_tracking_uri("sqlite:///mlflow.db") == "sqlite:///" + os.path.abspath(
        "mlflow.db"
    )
    assert absolute_tracking_uri("sqlite:////abs/m.db") == "sqlite:////abs/m.db"
    assert absolute_tracking_uri("http://mlflow:5000") == "http://mlflow:5000"
    assert absolute_tracking_uri("None") is None and absolute_tracking_uri("") is None
