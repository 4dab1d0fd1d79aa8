"""API keys: loading, constant-time verification, bearer parsing, and no key in any repr."""

from __future__ import annotations

import pickle

import pytest

from evalcluster.errors import SpecError
from evalcluster.serve.auth import (
    KEYS_ENV,
    ApiKeys,
    AuthResult,
    Principal,
    bearer_token,
    check_credentials,
    load_api_keys,
)


def test_keys_come_from_the_environment_and_the_key_file(tmp_path):
    key_file = tmp_path / "keys"
    key_file.write_text("# team keys\nfile-key-1\n\n  file-key-2  \n")
    keys = load_api_keys(str(key_file), environ={KEYS_ENV: "env-key-1, env-key-2,,"})
    assert len(keys) == 4
    for key in ("env-key-1", "env-key-2", "file-key-1", "file-key-2"):
        assert keys.verify(key) is AuthResult.OK
    assert keys.verify("# team keys") is AuthResult.WRONG


def test_no_keys_anywhere_is_empty(tmp_path):
    assert not load_api_keys(None, environ={})
    empty = tmp_path / "empty"
    empty.write_text("\n# nothing\n")
    assert not load_api_keys(str(empty), environ={KEYS_ENV: " , "})


def test_an_unreadable_key_file_is_a_spec_error_naming_the_argument(tmp_path):
    with pytest.raises(SpecError) as err:
        load_api_keys(str(tmp_path / "missing"), environ={})
    assert err.value.field == "api_keys_file"


def test_verify_tells_missing_from_wrong():
    keys = ApiKeys.of(["k-one", "k-two"])
    assert keys.verify("k-two") is AuthResult.OK
    assert keys.verify(None) is AuthResult.MISSING
    assert keys.verify("") is AuthResult.MISSING
    assert keys.verify("k-one ") is AuthResult.WRONG
    assert keys.verify("K-ONE") is AuthResult.WRONG


def test_without_keys_everything_is_allowed():
    assert ApiKeys().verify(None) is AuthResult.OK


def test_keys_are_kept_only_as_digests_and_never_shown():
    secret = "sk-very-secret-value-123"
    keys = ApiKeys.of([secret])
    assert secret not in repr(keys) and secret not in str(keys)
    assert secret.encode() not in pickle.dumps(keys)
    assert repr(keys) == "ApiKeys(1 key(s), 1 tenant(s))"


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer   abc  ", "abc"),
        ("BEARER abc", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer  ", None),
        ("abc", None),
        (None, None),
    ],
)
def test_bearer_token_parsing(header, token):
    assert bearer_token(header) == token


def test_the_header_wins_over_the_query_token():
    keys = ApiKeys.of(["good"])
    assert isinstance(check_credentials(keys, "Bearer good", "bad"), Principal)
    assert isinstance(check_credentials(keys, None, "good"), Principal)
    assert check_credentials(keys, "Bearer bad", "good") is AuthResult.WRONG
    assert check_credentials(keys, None, None) is AuthResult.MISSING
