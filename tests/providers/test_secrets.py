from __future__ import annotations

import pytest

from evalcluster.errors import SpecError
from evalcluster.providers.secrets import Secret, redact, resolve_api_key


def test_key_from_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "  value-123  ")
    assert resolve_api_key("p", env="MY_KEY", file=None).reveal() == "value-123"


def test_key_from_file_is_stripped(tmp_path) -> None:
    path = tmp_path / "key"
    path.write_text("file-key-456\n")
    assert resolve_api_key("p", env=None, file=str(path)).reveal() == "file-key-456"


def test_missing_variable_raises_spec_error_naming_provider_and_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(SpecError) as info:
        resolve_api_key("openai-main", env="NOT_SET_ANYWHERE", file=None)
    assert "openai-main" in str(info.value) and "NOT_SET_ANYWHERE" in str(info.value)
    assert info.value.field == "providers.openai-main.api_key_env"


def test_default_variable_is_used_and_named_when_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(SpecError, match="OPENAI_API_KEY"):
        resolve_api_key("x", env=None, file=None, default_env="OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_API_KEY", "k-default")
    assert resolve_api_key("x", env=None, file=None, default_env="OPENAI_API_KEY").reveal() == (
        "k-default"
    )


def test_missing_or_empty_file_raises_spec_error_naming_the_file(tmp_path) -> None:
    with pytest.raises(SpecError, match="nope.txt"):
        resolve_api_key("p", env=None, file=str(tmp_path / "nope.txt"))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(SpecError, match="is empty"):
        resolve_api_key("p", env=None, file=str(empty))


def test_optional_key_missing_gives_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ABSENT_KEY", raising=False)
    assert resolve_api_key("p", env="ABSENT_KEY", file=None, required=False) is None


def test_secret_never_shows_its_value() -> None:
    secret = Secret("sk-very-secret-value")
    for shown in (repr(secret), str(secret), f"{secret}", repr([secret]), repr({"k": secret})):
        assert "very-secret" not in shown
    assert secret.reveal() == "sk-very-secret-value"


def test_redact_scrubs_the_key_and_key_shaped_strings() -> None:
    secret = Secret("plain-secret-value")
    text = redact(
        "bad key plain-secret-value, or sk-proj-****abcd, or AIzaSyA1234567890abc", secret
    )
    assert "plain-secret-value" not in text and "sk-proj" not in text and "AIza" not in text
    assert text.count("***") == 3
