"""Fixtures shared by the scoring tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from evalcluster.scoring import registry
from evalcluster.suite.models import ScorerSpec


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scorer types a test registers disappear when it ends."""
    registry.scorer_types()  # load the built-ins into the real registry first
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))


def build_one(type_name: str, **options: object):
    """Build a single scorer the way a suite would."""
    return registry.build_scorers([ScorerSpec(type=type_name, **options)])[0]


@pytest.fixture
def forget_new_modules() -> Iterator[None]:
    """Modules a test imports from its tmp_path are dropped from sys.modules afterwards."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.endswith("_for_test"):
            del sys.modules[name]
